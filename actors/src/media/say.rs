//! Numbers spoken from a small fixed set of words ("twenty", "three", "hundred"), the
//! way switches say queue positions: every word is synthesized once and cached, so a
//! thousand callers at a thousand different positions cost no more TTS than one.

/// Words for 0–19.
const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];

/// Words for 20, 30, … 90 (index = tens digit).
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// The words that say `n` in English, most significant first ("one", "thousand",
/// "two", "hundred", "forty", "five" for 1245). Above 999,999 the digits are read one
/// by one: nobody waits behind a million callers, but the answer stays bounded.
pub fn number_words(n: u64) -> Vec<&'static str> {
    let mut words = Vec::new();
    if n >= 1_000_000 {
        let digits = n.to_string();
        for d in digits.bytes() {
            words.push(ONES[usize::from(d - b'0')]);
        }
        return words;
    }
    if n == 0 {
        words.push(ONES[0]);
        return words;
    }
    let thousands = n / 1_000;
    if thousands > 0 {
        below_thousand(thousands, &mut words);
        words.push("thousand");
    }
    below_thousand(n % 1_000, &mut words);
    words
}

fn below_thousand(n: u64, words: &mut Vec<&'static str>) {
    let hundreds = n / 100;
    if hundreds > 0 {
        words.push(ONES[hundreds as usize]);
        words.push("hundred");
    }
    let rest = (n % 100) as usize;
    if rest >= 20 {
        words.push(TENS[rest / 10]);
        if !rest.is_multiple_of(10) {
            words.push(ONES[rest % 10]);
        }
    } else if rest > 0 {
        words.push(ONES[rest]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_numbers_are_one_word() {
        assert_eq!(number_words(0), ["zero"]);
        assert_eq!(number_words(7), ["seven"]);
        assert_eq!(number_words(13), ["thirteen"]);
    }

    #[test]
    fn tens_hundreds_thousands() {
        assert_eq!(number_words(20), ["twenty"]);
        assert_eq!(number_words(42), ["forty", "two"]);
        assert_eq!(number_words(100), ["one", "hundred"]);
        assert_eq!(number_words(305), ["three", "hundred", "five"]);
        assert_eq!(
            number_words(1245),
            ["one", "thousand", "two", "hundred", "forty", "five"]
        );
        assert_eq!(number_words(20_000), ["twenty", "thousand"]);
        assert_eq!(
            number_words(999_999),
            [
                "nine", "hundred", "ninety", "nine", "thousand", "nine", "hundred", "ninety",
                "nine"
            ]
        );
    }

    #[test]
    fn huge_numbers_are_read_digit_by_digit() {
        assert_eq!(
            number_words(1_000_000),
            ["one", "zero", "zero", "zero", "zero", "zero", "zero"]
        );
        assert_eq!(number_words(u64::MAX).len(), 20);
    }

    #[test]
    fn every_word_comes_from_a_small_vocabulary() {
        let mut vocabulary = std::collections::BTreeSet::new();
        for n in 0..100_000 {
            vocabulary.extend(number_words(n));
        }
        assert!(vocabulary.len() <= 30, "{vocabulary:?}");
    }
}
