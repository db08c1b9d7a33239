#!/usr/bin/env python3
"""Real SIP phones for ctiswitch tests, built on PJSIP's pjsua2 (PyPI pjsua2-python).

One process, one pjsua2 Endpoint, any number of accounts (phones). Each scenario prints its
result as one JSON object, on the last line of stdout (pjlib's own logging goes to stderr),
that the Rust test reads and judges; `{"event": ...}` lines before it report progress to a
test that drives several processes. Every loop is bounded in time. `errors` (a list of
strings, empty when all went well) is in every result.

Scenarios:
  register  --phone USER:PASS            register once, report the final status code
  call      --caller USER:PASS --callee USER:PASS
            A calls B through the switch; B rings, answers after --answer-delay; each plays
            its own tone and records what it hears; A sends DTMF (RFC 4733); one side hangs
            up. Reports call states, the caller's SIP Call-ID, timings, the negotiated codec,
            RTP counters, the DTMF digits B received and the tone power in each recording.
            --hold SECONDS: after --talk, A puts B on hold (re-INVITE, a=sendonly, or with
              --hold-dir inactive a=inactive), waits SECONDS, takes it off hold (re-INVITE)
              and talks --talk-after more seconds.
            --callee2 USER:PASS: a third phone C (tone --tone-c, --answer-code2,
              --answer-delay2), for calls that fork (groups); A dials --dial.
            --answer-code 180: B rings and never answers; 486 / 603: B refuses.
            --no-sdp-offer: A's INVITE has no SDP (RFC 3261 delayed offer); `sdp_created` in
              each call's summary says whether each local SDP answered a remote offer.
              (`dial` takes it too.)
            --media-stop-after SECONDS: SECONDS after the answer, the process stops its
              conference-bridge clock (`setNoDev`): neither phone sends RTP any more while
              SIP stays alive; A then waits up to --talk seconds for the switch to hang up.
  answer    --phone USER:PASS [--die-after SECONDS]
            One phone that answers the calls it gets (B in its own process, tone --tone-b,
            or --no-tone / --play-wav as in `dial`). Prints `{"event": "registered", ...}`
            once registered; waits up to --setup-timeout for a call to be answered, then
            up to --talk seconds for it to end, then hangs up itself. Reports `register`,
            `callee` (the first call's summary), `callee_calls` and `audio.callee` (what B
            heard, analysed for --listen-freqs then --tone-a/--tone-b, as in `dial`).
            With --die-after it prints `{"event": "dying", ...}` SECONDS after the answer
            and exits at once with status 9 (os._exit: no BYE, no un-REGISTER, no more RTP:
            a phone that vanishes).
  dial      --caller USER:PASS --dial NUMBER
            A alone calls NUMBER (an IVR, a prompt, music on hold, a conference, another
            phone …), waits up to --setup-timeout for the answer (then CANCELs), and records
            everything it hears from the first media (early media included) to the end.
            What A sends:
              default          its tone --tone-a (440 Hz), looping; --tone-a 0: silence.
              --no-tone        no player at all: nothing is mixed into A's stream, which
                               still sends RTP carrying silence (the conference bridge
                               feeds it silent frames; no VAD), so RTP timeouts do not fire.
              --play-wav FILE  FILE (16-bit PCM WAV, any rate) once from the first media
                               (event `play`), not looping, then silence (RTP goes on).
            DTMF: --dtmf DIGITS sent --dtmf-at SECONDS (default 1.0) after the answer, by
              --dtmf-method rfc2833 (RFC 4733 events, the default), info (SIP INFO,
              application/dtmf-relay, one INFO per digit; the responses are in
              `caller.requests`) or inband (tones in the audio: per digit its two standard
              frequencies at amplitude 0.25 each for --dtmf-duration ms (default 100), then
              100 ms of silence, 8 kHz; A's own tone/WAV pauses meanwhile and resumes after).
              --dtmf-duration MS also sets the RFC 4733 / INFO duration (pjsua default 160).
              Groups: --dtmf "1,23#" --dtmf-at "2,5.5" sends "1" 2 s and "23#" 5.5 s after
              the answer (one --dtmf-at for several groups: spaced 0.5 s apart).
            End: A waits up to --talk seconds (default 3) after the answer for the far end
              to hang up, then hangs up itself; --hangup-after SECONDS instead makes A hang
              up SECONDS after the answer (if the far end has not already).
            --listen-freqs F1,F2,…: the frequencies the analysis of what A heard looks for
              (prompt, music, beep tones …); default --tone-a, --tone-b (440, 1000).
            Result (besides `register`, `caller` = the call's summary, `hangup_at` = when A
            hung up, if it did):
              hungup_locally   A ended the call (BYE, or CANCEL when unanswered)
              invite_code      final status of A's INVITE past any digest challenge (200,
                               404, 486, 487 …; null if none)
              last_code        pjsua's last status code of the call
              talk_seconds     answer to disconnect (null if never answered)
              connect_duration pjsua's own connected duration
              dtmf_sent        [{digits, method, t, at}] (+ `seconds` for inband, `error`)
              dtmf_received    [{digit, method ("rfc2833"/"info"), t, at}]
              events           [{event, t, at, …}]: invite, early, media (status, dir),
                               confirmed, play (file, seconds), dtmf_sent, dtmf_inband_end,
                               dtmf_received, hangup (A's own), disconnected (code, local)
              audio.caller     the analysis (below) of A's recording, with freqs =
                               --listen-freqs, then --tone-a/--tone-b when not among them.
            `t` values are Unix times; `at` is seconds relative to the answer (200 OK /
            CONFIRMED; negative before it, null if never answered).
  multi     --phones U1:P1,U2:P2,… --dial NUMBER
            Several phones in this one process each call NUMBER (a meet-me conference
            room): phone i plays the i-th of --tones (default 440,1000,1500; one per phone,
            looping) unless its index is in --silent (comma list of 0-based indexes: no
            player, the phone sends RTP carrying silence, like a listen-only member; its
            tone still appears in the analysis, as a control nobody should hear). Phone i+1
            dials --join-gap seconds (default 1) after phone i was answered (or gave up
            after --setup-timeout). After the last join every phone talks --talk seconds
            (default 3), then all hang up (BYE). The window analysed is from --settle
            seconds (default 1) after the last join to the hang-up: keep --talk > --settle.
            --listen-freqs adds frequencies (a join beep, music …) to the analysis, after
            the phones' tones (timeline letters a, b, c, … = phone 0, 1, 2, …, then those).
            --dtmf DIGITS (with --dtmf-at, --dtmf-method, --dtmf-duration as in `dial`,
            e.g. the room's PIN): every phone sends them after its answer, and the next
            phone dials --join-gap seconds after the last group's digits are out (+0.5 s +
            0.3 s per digit); `dtmf_sent` is in each phone's `call`.
            Result: `number`, `joins` [{index, t}], `all_joined_at`, `hangup_at`, `window`
            [from, to], and `phones`, one per phone in --phones order:
              index, user, tone, silent, register (REGISTER final code)
              invite_code, last_code, connected, hungup_locally
              hears          {"<freq>": that frequency's share of the power this phone
                             heard in the window}, for every phone's tone and every
                             --listen-freqs (two others mixed equally give ~0.5 each; one
                             alone ~1.0; absent ~0)
              hears_self     share of its own tone (an echo of itself: should be ~0)
              hears_others   `hears` restricted to the other phones' tones
              heard_seconds  non-silent 100 ms blocks in the window × 0.1
              window_rms     RMS over the window (16-bit scale)
              call           the call's summary; audio: the analysis (window "joined")
              error          null, or why it did not take part (registration, no answer)

Any scenario: --sip-port PORT binds the SIP transport to PORT (a trunk's host:port) and
--no-register sends no REGISTER (with both, `dial` calls as a carrier behind a trunk would).

Per call the JSON also holds `media` (every onCallMediaState: status and direction),
`codecs` (every codec the call's stream used, in order), `invites` (the final status of every
INVITE transaction of the call, initial and re-INVITEs, with its role), `requests` (the same
for the other transactions: INFO, BYE …, with `method`), `hungup_locally` (this phone sent the
BYE/CANCEL itself), `invite_code`, `dtmf` (digits received, a string), `dtmf_received`,
`dtmf_sent` and `events` (as in `dial`).

Audio analysis: each recording (16-bit mono at the bridge's 16 kHz) is cut into 100 ms
blocks; for every tone frequency the result holds its share of the recording's power
(`<freq>`: Goertzel power over total power, summed over all blocks; 1.0 = a pure tone, ~0 =
absent) and how many seconds of blocks it dominated (`<freq>_seconds`: blocks where that tone
carries more than half of a non-silent block). `freqs` lists the frequencies in order;
`timeline` is one letter per block: a, b, c, … for the frequency (in `freqs` order) that
dominates it (A's, B's, C's tone in `call`), `.` for silence (RMS < 100) and `?` for anything
else. `rms_timeline` is each block's RMS (16-bit scale, rounded to an int; a tone at the
default amplitude 0.3 gives ~6950, G.711 speech a few hundred to a few thousand);
`heard_seconds` (= `active_seconds`) counts non-silent blocks × 0.1; `heard_from` /
`heard_to` are the start of the first and the end of the last non-silent block, in seconds
from the recording's start (`start`, a Unix time; null when all silent). `windows` gives, for
named time windows of the call (e.g. `after_unhold`, `joined`), the fraction of the window's
blocks each tone dominated (`<freq>`), each tone's power share within the window
(`<freq>_share`), the window's `rms` and `heard_seconds`; block i of a recording covers
[start + i * 0.1 s, start + (i + 1) * 0.1 s), start being the moment the recorder was created
(the conference bridge clocks it in real time).
"""
import argparse
import functools
import gc
import json
import math
import os
import random
import struct
import sys
import tempfile
import time
import traceback
import wave

import pjsua2 as pj

LOOP_STEP_MS = 20
BLOCK_SECONDS = 0.1
# A block quieter than this (RMS, 16-bit scale) is silence: no media, or a DTMF gap.
SILENCE_RMS = 100.0

ERRORS = []


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def guarded(fn):
    """pjsua2 swallows exceptions raised in callbacks (and keeps their tracebacks, which keeps
    Call objects alive past libDestroy): log them and report them in the JSON instead."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception:  # noqa: BLE001 - reported to the test
            text = traceback.format_exc()
            log(text)
            ERRORS.append(f"{fn.__name__}: {text.strip().splitlines()[-1]}")
            return None

    return wrapper


def write_tone(path, freq, seconds=2.0, rate=8000, amplitude=0.3):
    """A 16-bit mono sine WAV (a whole number of periods, so the looping player is seamless)."""
    frames = int(seconds * rate)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        data = bytearray()
        for n in range(frames):
            v = int(32767 * amplitude * math.sin(2 * math.pi * freq * n / rate))
            data += struct.pack("<h", v)
        w.writeframes(bytes(data))


def read_wav(path):
    with wave.open(path, "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        raw = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"{path}: expected 16-bit samples, got {width * 8}")
    samples = struct.unpack("<%dh" % (len(raw) // 2), raw)
    if channels > 1:
        samples = samples[::channels]
    return rate, samples


def goertzel_power(samples, rate, freq):
    """Power of one frequency, normalised per sample: a sine of amplitude A gives A^2/4."""
    if not samples:
        return 0.0
    k = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + k * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    return power / (len(samples) ** 2)


LETTERS = "abcdefghijklmnopqrstuvwxyz"

# DTMF: the row (low) and column (high) frequency of every key.
DTMF_ROWS = (697, 770, 852, 941)
DTMF_COLS = (1209, 1336, 1477, 1633)
DTMF_KEYS = ("123A", "456B", "789C", "*0#D")


def dtmf_freqs(digit):
    for r, keys in enumerate(DTMF_KEYS):
        c = keys.find(digit.upper())
        if c >= 0:
            return DTMF_ROWS[r], DTMF_COLS[c]
    raise ValueError(f"not a DTMF digit: {digit!r}")


def write_dtmf(path, digits, tone_ms=100, gap_ms=100, rate=8000, amplitude=0.25):
    """In-band DTMF: per digit its two frequencies (each at `amplitude`) for tone_ms, then
    gap_ms of silence; 16-bit mono. Returns the file's length in seconds."""
    tone_n = int(rate * tone_ms / 1000)
    gap_n = int(rate * gap_ms / 1000)
    data = bytearray()
    for d in digits:
        lo, hi = dtmf_freqs(d)
        for n in range(tone_n):
            v = amplitude * (
                math.sin(2 * math.pi * lo * n / rate) + math.sin(2 * math.pi * hi * n / rate)
            )
            data += struct.pack("<h", int(32767 * v))
        data += b"\0\0" * gap_n
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(data))
    return len(data) / 2 / rate


def wav_seconds(path):
    with wave.open(path, "rb") as w:
        return w.getnframes() / float(w.getframerate())


def analyse(path, freqs, start=None, windows=None):
    """Per frequency: its share of the recording's power, and the seconds it dominated.

    Block-wise (100 ms), so that jitter-buffer frame drops/inserts and clock drift, which
    break the phase of one long Goertzel window, do not hide a tone that is there.
    `freqs` are the tones to look for (A's, B's, C's in `call`), in order: letters a, b, c, …
    in `timeline`; `windows` maps a name to absolute (from, to) times, `start` is the
    recording's start."""
    rate, samples = read_wav(path)
    n = max(int(rate * BLOCK_SECONDS), 1)
    total_energy = 0.0
    tone_energy = {f: 0.0 for f in freqs}
    dominated = {f: 0 for f in freqs}
    active_blocks = 0
    timeline = []
    rms_timeline = []
    # Per block: (energy, {freq: tone energy}), for the windows.
    blocks = []
    for start_sample in range(0, len(samples) - n + 1, n):
        block = samples[start_sample : start_sample + n]
        energy = sum(float(x) * x for x in block)
        total_energy += energy
        mean_square = energy / n
        rms = math.sqrt(mean_square)
        rms_timeline.append(int(round(rms)))
        active = rms >= SILENCE_RMS
        active_blocks += active
        letter = "." if not active else "?"
        per_freq = {}
        for i, f in enumerate(freqs):
            # Sine power is A^2/2 per sample; Goertzel gives A^2/4: share = 2 * g / mean_sq.
            e = 2.0 * goertzel_power(block, rate, f) * n
            tone_energy[f] += e
            per_freq[f] = e
            if active and e > 0.5 * energy:
                dominated[f] += 1
                letter = LETTERS[i] if i < len(LETTERS) else "?"
        timeline.append(letter)
        blocks.append((energy, per_freq))
    heard = [i for i, r in enumerate(rms_timeline) if r >= SILENCE_RMS]
    result = {
        "seconds": len(samples) / rate if rate else 0.0,
        "rms": math.sqrt(total_energy / max(len(samples), 1)),
        "active_seconds": active_blocks * BLOCK_SECONDS,
        "heard_seconds": round(active_blocks * BLOCK_SECONDS, 3),
        "heard_from": round(heard[0] * BLOCK_SECONDS, 3) if heard else None,
        "heard_to": round((heard[-1] + 1) * BLOCK_SECONDS, 3) if heard else None,
        "timeline": "".join(timeline),
        "rms_timeline": rms_timeline,
        "freqs": list(freqs),
        "start": start,
    }
    for f in freqs:
        result[str(f)] = (tone_energy[f] / total_energy) if total_energy > 0 else 0.0
        result[f"{f}_seconds"] = round(dominated[f] * BLOCK_SECONDS, 3)
    if start is not None and windows:
        result["windows"] = {}
        for name, (t0, t1) in windows.items():
            picked = [
                i
                for i in range(len(timeline))
                if t0 <= start + (i + 0.5) * BLOCK_SECONDS < t1
            ]
            letters = "".join(timeline[i] for i in picked)
            w = {"from": t0, "to": t1, "blocks": len(picked), "timeline": letters}
            w_energy = sum(blocks[i][0] for i in picked)
            w["rms"] = math.sqrt(w_energy / (len(picked) * n)) if picked else 0.0
            w["heard_seconds"] = round(
                sum(1 for i in picked if rms_timeline[i] >= SILENCE_RMS) * BLOCK_SECONDS, 3
            )
            for i, f in enumerate(freqs[: len(LETTERS)]):
                hits = sum(1 for letter in letters if letter == LETTERS[i])
                w[str(f)] = round(hits / len(picked), 3) if picked else 0.0
                tone = sum(blocks[j][1][f] for j in picked)
                w[f"{f}_share"] = round(tone / w_energy, 4) if w_energy > 0 else 0.0
            result["windows"][name] = w
    return result


class Phone(pj.Account):
    def __init__(self, runner, user, answer_code=200, answer_delay=0.5):
        super().__init__()
        self.runner = runner
        self.user = user
        self.answer_code = answer_code
        self.answer_delay = answer_delay
        self.reg_codes = []
        self.calls = []

    @guarded
    def onRegState(self, prm):
        self.reg_codes.append(prm.code)
        log(f"{self.user}: reg state {prm.code} {prm.reason}")

    @guarded
    def onIncomingCall(self, prm):
        call = PhoneCall(self, prm.callId)
        call.incoming_at = time.time()
        self.calls.append(call)
        op = pj.CallOpParam()
        if self.answer_code == 200:
            op.statusCode = 180
            call.answer(op)
            call.answer_at = time.time() + self.answer_delay
        else:
            # 1xx: ring until cancelled; 4xx-6xx: refuse.
            op.statusCode = self.answer_code
            call.answer(op)

MEDIA_STATUS = {
    pj.PJSUA_CALL_MEDIA_NONE: "NONE",
    pj.PJSUA_CALL_MEDIA_ACTIVE: "ACTIVE",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "LOCAL_HOLD",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "REMOTE_HOLD",
    pj.PJSUA_CALL_MEDIA_ERROR: "ERROR",
}
MEDIA_CONNECTED = (
    pj.PJSUA_CALL_MEDIA_ACTIVE,
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD,
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD,
)
MEDIA_DIR = {
    pj.PJMEDIA_DIR_NONE: "inactive",
    pj.PJMEDIA_DIR_ENCODING: "sendonly",
    pj.PJMEDIA_DIR_DECODING: "recvonly",
    pj.PJMEDIA_DIR_ENCODING_DECODING: "sendrecv",
}


DTMF_METHODS = {
    "rfc2833": pj.PJSUA_DTMF_METHOD_RFC2833,
    "info": pj.PJSUA_DTMF_METHOD_SIP_INFO,
}


class PhoneCall(pj.Call):
    def __init__(self, account, call_id=pj.PJSUA_INVALID_ID):
        super().__init__(account, call_id)
        self.account = account
        self.states = []
        self.last_code = None
        self.call_id = None
        self.incoming_at = None
        self.early_at = None
        self.answered_at = None
        self.confirmed_at = None
        self.disconnected_at = None
        self.connect_duration = None
        self.dtmf = ""
        self.dtmf_methods = []
        self.dtmf_received = []
        self.dtmf_sent = []
        self.answer_at = None
        self.player = None
        self.player_file = None
        self.player_paused = False
        self.dtmf_player = None
        self.recorder = None
        self.clock = None
        self.record_path = None
        self.media_at = None
        self.media_ready = False
        self.audio_index = None
        self.codec = None
        self.codecs = []
        self.rtp = None
        self.invite_at = None
        self.hangup_at = None
        self.media = []
        self.invites = []
        self.requests = []
        self.events = []
        self.open_tsx = {}
        self.sdp_created = []

    def onCallSdpCreated(self, prm):
        # Whether each local SDP answered a remote offer: a caller that made a delayed
        # offer (--no-sdp-offer) creates its first SDP for the offer in the 200.
        self.sdp_created.append({"answers_an_offer": bool(prm.remSdp.wholeSdp)})

    def event(self, name, **fields):
        """A timed event of this call (reported in `events`, with `at` relative to the answer)."""
        self.events.append({"event": name, "t": time.time(), **fields})

    @guarded
    def onCallState(self, prm):
        ci = self.getInfo()
        now = time.time()
        self.states.append(ci.stateText)
        self.last_code = ci.lastStatusCode
        if ci.callIdString and self.call_id is None:
            self.call_id = ci.callIdString
        if ci.state == pj.PJSIP_INV_STATE_EARLY and self.early_at is None:
            self.early_at = now
            self.event("early", code=ci.lastStatusCode)
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
            self.confirmed_at = now
            self.event("confirmed")
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED and self.disconnected_at is None:
            self.disconnected_at = now
            self.connect_duration = ci.connectDuration.sec + ci.connectDuration.msec / 1000.0
            self.event("disconnected", code=ci.lastStatusCode, local=self.hangup_at is not None)
            # Stop recording now: what follows the call is not part of it. The recorder
            # and its clock are destroyed by the runner after this callback returns:
            # destroying a conference port inside the callback that tears the call's
            # media down crashed pjsua2 (SIGSEGV), rarely.
            if self.recorder is not None:
                if self.clock is not None:
                    try:
                        self.clock.stopTransmit(self.recorder)
                    except pj.Error as e:
                        log(f"stopping the recording clock: {e.info()}")
                self.account.runner.retired.extend([self.clock, self.recorder])
                self.recorder = None
                self.clock = None
        log(f"{self.account.user}: call {ci.stateText} {ci.lastStatusCode}")

    def hangup_now(self):
        """Our own BYE / CANCEL (remembered, so a test can tell who ended the call)."""
        if self.hangup_at is None:
            self.hangup_at = time.time()
            self.event("hangup")
        self.hangup(pj.CallOpParam())

    @guarded
    def onCallTsxState(self, prm):
        """Final status of every transaction of the call: INVITEs (initial and re-INVITEs) in
        `invites`, the others (INFO, BYE, …) in `requests`."""
        if prm.e.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        tsx = prm.e.body.tsxState.tsx
        key = (int(tsx.pjTransaction), tsx.role, tsx.method)  # the pjsip_transaction pointer
        if tsx.state in (pj.PJSIP_TSX_STATE_COMPLETED, pj.PJSIP_TSX_STATE_TERMINATED):
            if tsx.statusCode >= 200 and key not in self.open_tsx:
                self.open_tsx[key] = tsx.statusCode
                role = "uac" if tsx.role == pj.PJSIP_ROLE_UAC else "uas"
                entry = {"role": role, "code": tsx.statusCode, "t": time.time()}
                if tsx.method == "INVITE":
                    self.invites.append(entry)
                else:
                    self.requests.append({"method": tsx.method, **entry})
                log(f"{self.account.user}: {tsx.method} ({role}) -> {tsx.statusCode}")
        elif tsx.state in (
            pj.PJSIP_TSX_STATE_NULL,
            pj.PJSIP_TSX_STATE_CALLING,
            pj.PJSIP_TSX_STATE_TRYING,
            pj.PJSIP_TSX_STATE_DESTROYED,
        ):
            # pjsip reuses a destroyed transaction's memory (and pjsua does not always
            # report DESTROYED): a transaction that starts under a known key is a new one.
            self.open_tsx.pop(key, None)

    def stream_media(self):
        """The call's audio port in the conference bridge, or None."""
        if self.audio_index is None or self.disconnected_at is not None:
            return None
        try:
            return self.getAudioMedia(self.audio_index)
        except pj.Error as e:
            log(f"audio media: {e.info()}")
            return None

    @guarded
    def onCallMediaState(self, prm):
        ci = self.getInfo()
        for mi in ci.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO:
                status = MEDIA_STATUS.get(mi.status, str(mi.status))
                direction = MEDIA_DIR.get(mi.dir, str(mi.dir))
                self.media.append({"status": status, "dir": direction, "t": time.time()})
                self.event("media", status=status, dir=direction)
                log(f"{self.account.user}: media {status} {direction}")
        for i, mi in enumerate(ci.media):
            # On hold the stream lives on in one direction: keep playing (the held party
            # hears it, as it would hear music on hold) and recording.
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status in MEDIA_CONNECTED:
                media = self.getAudioMedia(i)
                self.audio_index = i
                runner = self.account.runner
                if not self.media_ready:
                    self.media_ready = True
                    self.recorder = pj.AudioMediaRecorder()
                    # One file per call (a phone may get several calls).
                    n = sum(1 for c in self.account.calls if c.record_path)
                    suffix = f"-{n + 1}" if n else ""
                    self.record_path = os.path.join(
                        runner.workdir, f"heard-by-{self.account.user}{suffix}.wav"
                    )
                    self.recorder.createRecorder(self.record_path)
                    # The bridge writes to a port only while something transmits to it: a
                    # silent player keeps the recording in step with the wall clock when
                    # the stream's port goes away (re-INVITE) or sends nothing.
                    self.clock = pj.AudioMediaPlayer()
                    self.clock.createPlayer(runner.silence_file(), 0)
                    self.clock.startTransmit(self.recorder)
                    self.media_at = time.time()
                    source = runner.source(self.account.user)
                    if source is not None:
                        path, options = source
                        self.player = pj.AudioMediaPlayer()
                        self.player.createPlayer(path, options)
                        self.player_file = path
                        if options & pj.PJMEDIA_FILE_NO_LOOP:
                            self.event("play", file=path, seconds=round(wav_seconds(path), 3))
                if self.player is not None and not self.player_paused:
                    self.player.startTransmit(media)
                if self.dtmf_player is not None:
                    self.dtmf_player.startTransmit(media)
                if self.recorder is not None:
                    media.startTransmit(self.recorder)
                try:
                    si = self.getStreamInfo(i)
                    self.codec = f"{si.codecName}/{si.codecClockRate}"
                    if not self.codecs or self.codecs[-1] != self.codec:
                        self.codecs.append(self.codec)
                except pj.Error as e:
                    log(f"stream info: {e.info()}")

    @guarded
    def onDtmfDigit(self, prm):
        method = "rfc2833" if prm.method == pj.PJSUA_DTMF_METHOD_RFC2833 else "info"
        self.dtmf += prm.digit
        self.dtmf_methods.append(method)
        self.dtmf_received.append({"digit": prm.digit, "method": method, "t": time.time()})
        self.event("dtmf_received", digit=prm.digit, method=method)
        log(f"{self.account.user}: DTMF {prm.digit} ({method})")

    def send_dtmf(self, digits, method, duration_ms=None):
        """DTMF now: RFC 4733 events or SIP INFO (pjsua), or in-band tones played into the
        call (the phone's own audio source pauses meanwhile). Returns the seconds it takes."""
        entry = {"digits": digits, "method": method, "t": time.time()}
        self.dtmf_sent.append(entry)
        self.event("dtmf_sent", digits=digits, method=method)
        if method == "inband":
            media = self.stream_media()
            if media is None:
                entry["error"] = "no audio stream"
                ERRORS.append(f"inband DTMF {digits}: no audio stream")
                return 0.0
            runner = self.account.runner
            path = os.path.join(runner.workdir, f"dtmf-{len(self.dtmf_sent)}-{self.account.user}.wav")
            seconds = write_dtmf(path, digits, tone_ms=duration_ms or 100)
            if self.player is not None:
                self.player.stopTransmit(media)
                self.player_paused = True
            self.dtmf_player = pj.AudioMediaPlayer()
            self.dtmf_player.createPlayer(path, pj.PJMEDIA_FILE_NO_LOOP)
            self.dtmf_player.startTransmit(media)
            entry["seconds"] = round(seconds, 3)
            return seconds
        prm = pj.CallSendDtmfParam()
        prm.digits = digits
        prm.method = DTMF_METHODS[method]
        if duration_ms:
            prm.duration = int(duration_ms)
        try:
            self.sendDtmf(prm)
        except pj.Error as e:
            entry["error"] = e.info()
            ERRORS.append(f"sendDtmf {method} {digits}: {e.info()}")
        return 0.2 * len(digits)

    def inband_done(self):
        """The in-band digits are out: drop their player, the phone's own audio resumes."""
        self.dtmf_player = None
        self.event("dtmf_inband_end")
        if self.player_paused:
            self.player_paused = False
            media = self.stream_media()
            if media is not None and self.player is not None:
                self.player.startTransmit(media)

    def snapshot_rtp(self):
        """RTP counters of the first audio stream, while the call is up."""
        try:
            st = self.getStreamStat(0)
            self.rtp = {
                "rx_packets": st.rtcp.rxStat.pkt,
                "tx_packets": st.rtcp.txStat.pkt,
                "rx_lost": st.rtcp.rxStat.loss,
            }
        except pj.Error as e:
            log(f"stream stat: {e.info()}")

    def invite_code(self):
        """The final status of the initial INVITE (200, 486, 404, 487, …), past any digest
        challenge; None if it never got one."""
        for inv in self.invites:
            if inv["role"] == "uac" and inv["code"] not in (401, 407):
                return inv["code"]
        for inv in self.invites:
            if inv["role"] == "uas":
                return inv["code"]
        if self.confirmed_at is None and self.disconnected_at is not None:
            # pjsua does not always report a failed INVITE's transaction to the call; its
            # final response is then the call's last status.
            return self.last_code
        return None

    def summary(self):
        def span(a, b):
            return round(b - a, 3) if a is not None and b is not None else None

        def rel(t):
            return span(self.confirmed_at, t)

        return {
            "call_id": self.call_id,
            "states": self.states,
            "last_code": self.last_code,
            "invite_code": self.invite_code(),
            "connected": self.confirmed_at is not None,
            "times": {
                "invite": self.invite_at,
                "incoming": self.incoming_at,
                "early": self.early_at,
                "answered": self.answered_at,
                "confirmed": self.confirmed_at,
                "disconnected": self.disconnected_at,
                "hangup": self.hangup_at,
            },
            "ring_seconds": span(self.incoming_at or self.early_at, self.answered_at or self.confirmed_at),
            "setup_seconds": span(self.invite_at, self.disconnected_at),
            "hungup_locally": self.hangup_at is not None,
            "media": self.media,
            "media_statuses": [m["status"] for m in self.media],
            "invites": self.invites,
            "requests": self.requests,
            "talk_seconds": span(self.confirmed_at, self.disconnected_at),
            "connect_duration": self.connect_duration,
            "dtmf": self.dtmf,
            "dtmf_methods": sorted(set(self.dtmf_methods)),
            "dtmf_received": [{**d, "at": rel(d["t"])} for d in self.dtmf_received],
            "dtmf_sent": [{**d, "at": rel(d["t"])} for d in self.dtmf_sent],
            "events": [{**e, "at": rel(e["t"])} for e in self.events],
            "codec": self.codec,
            "codecs": self.codecs,
            "rtp": self.rtp,
            "record": self.record_path,
            "record_start": self.media_at,
            "sdp_created": self.sdp_created,
        }


class Runner:
    def __init__(self, args):
        self.args = args
        self.workdir = args.workdir or tempfile.mkdtemp(prefix="pjphone-")
        os.makedirs(self.workdir, exist_ok=True)
        self.tones = {}
        # user -> "tone" (loop its tone, the default), None (no player at all) or a WAV path
        # (played once).
        self.sources = {}
        self.json_out = None
        self.phones = []
        # Media objects to destroy outside pjsua2's callbacks (see Call.onCallState).
        self.retired = []
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "ctiswitch-test-pjsua2"
        cfg.logConfig.level = args.pj_log
        cfg.logConfig.consoleLevel = args.pj_log
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        self.ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        # --sip-port: a fixed source port, e.g. to be a trunk's host:port.
        tcfg.port = args.sip_port or 0
        tcfg.boundAddress = "127.0.0.1"
        tcfg.publicAddress = "127.0.0.1"
        kind = pj.PJSIP_TRANSPORT_TCP if args.transport == "tcp" else pj.PJSIP_TRANSPORT_UDP
        self.transport = self.ep.transportCreate(kind, tcfg)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        if args.codec:
            wanted = args.codec.lower() + "/"
            found = False
            for c in self.ep.codecEnum2():
                on = c.codecId.lower().startswith(wanted)
                found = found or on
                self.ep.codecSetPriority(c.codecId, 255 if on else 0)
            if not found:
                raise SystemExit(f"codec {args.codec} not available")
        # RTP ports: a random even base in 40000-59999, clear of the switch's default range
        # (20000-29999); pjsua steps on to the next pair when one is taken.
        self.rtp_base = 40000 + 2 * random.randrange(0, 9000)

    def tone_file(self, user):
        freq = self.tones.get(user, 0)
        path = os.path.join(self.workdir, f"tone-{user}-{freq}.wav")
        if not os.path.exists(path):
            write_tone(path, freq if freq else 1, amplitude=0.3 if freq else 0.0)
        return path

    def source(self, user):
        """What a phone plays into its calls: (WAV path, player options), or None."""
        kind = self.sources.get(user, "tone")
        if kind is None:
            return None
        if kind == "tone":
            return self.tone_file(user), 0
        return kind, pj.PJMEDIA_FILE_NO_LOOP

    def silence_file(self):
        path = os.path.join(self.workdir, "silence.wav")
        if not os.path.exists(path):
            write_tone(path, 1, seconds=1.0, amplitude=0.0)
        return path

    def uri_params(self):
        return ";transport=tcp" if self.args.transport == "tcp" else ""

    def event(self, name, **fields):
        """An early JSON line on stdout (the final result is always the last line)."""
        line = json.dumps({"event": name, "t": time.time(), **fields})
        log(f"event: {line}")
        if self.json_out is not None:
            self.json_out.write(line + "\n")
            self.json_out.flush()

    def phone(self, cred, tone=0, answer_code=200, answer_delay=0.5, source="tone"):
        """A registered account. `source`: "tone" (loop `tone`), None (send no audio) or the
        path of a WAV to play once."""
        user, _, password = cred.partition(":")
        acfg = pj.AccountConfig()
        switch = self.args.switch
        acfg.idUri = f"sip:{user}@{switch}"
        if not self.args.no_register:
            acfg.regConfig.registrarUri = f"sip:{switch}{self.uri_params()}"
        acfg.regConfig.timeoutSec = self.args.expires
        acfg.regConfig.retryIntervalSec = 0
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
        mt = acfg.mediaConfig.transportConfig
        mt.boundAddress = "127.0.0.1"
        mt.publicAddress = "127.0.0.1"
        mt.port = self.rtp_base + 100 * len(self.phones)
        mt.portRange = 0
        acfg.natConfig.iceEnabled = False
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        phone = Phone(self, user, answer_code, answer_delay)
        self.tones[user] = tone
        self.sources[user] = source
        phone.create(acfg)
        self.phones.append(phone)
        return phone

    def pump(self, seconds, until=None):
        deadline = time.time() + seconds
        while time.time() < deadline:
            self.ep.libHandleEvents(LOOP_STEP_MS)
            self.retired.clear()
            self.answer_pending()
            if until is not None and until():
                return True
        return until() if until is not None else True

    def answer_pending(self):
        for phone in self.phones:
            for call in phone.calls:
                if call.answer_at is not None and time.time() >= call.answer_at:
                    call.answer_at = None
                    op = pj.CallOpParam()
                    op.statusCode = 200
                    try:
                        call.answer(op)
                        call.answered_at = time.time()
                    except pj.Error as e:
                        ERRORS.append(f"answer: {e.info()}")
                        log(f"answer failed: {e.info()}")

    def wait_registered(self, phone, seconds=10):
        if self.args.no_register:
            return None
        self.pump(seconds, lambda: any(c // 100 != 1 for c in phone.reg_codes))
        return phone.reg_codes[-1] if phone.reg_codes else None

    def all_calls(self):
        return [c for p in self.phones for c in p.calls]

    def close(self):
        """Hang up what is left, release every Call and Account, then destroy the library.

        A pjsua2 object that outlives libDestroy aborts the process on an assertion when it
        is finally collected, so no local variable here may hold a Call or an Account."""
        try:
            if any(c.disconnected_at is None for c in self.all_calls()):
                self.ep.hangupAllCalls()
                self.pump(3, lambda: all(c.disconnected_at for c in self.all_calls()))
        except pj.Error as e:
            log(f"hangup at close: {e.info()}")
        self.release_calls()
        gc.collect()
        self.shutdown_accounts()
        if self.phones:
            self.pump(1)  # let the un-REGISTERs go out
        self.phones = []
        self.retired.clear()
        gc.collect()
        self.ep.libDestroy()

    def release_calls(self):
        for phone in self.phones:
            for call in phone.calls:
                call.player = None
                call.dtmf_player = None
                call.recorder = None
                call.clock = None
            phone.calls = []

    def shutdown_accounts(self):
        for phone in self.phones:
            try:
                phone.shutdown()
            except pj.Error as e:
                log(f"account shutdown: {e.info()}")


def scenario_register(runner, args):
    phone = runner.phone(args.phone)
    code = runner.wait_registered(phone)
    result = {"codes": list(phone.reg_codes), "final": code}
    if args.unregister and code == 200:
        n = len(phone.reg_codes)
        phone.setRegistration(False)
        runner.pump(5, lambda: len(phone.reg_codes) > n)
        result["unregister_codes"] = phone.reg_codes[n:]
    return result


def hold_and_unhold(runner, call, args, result):
    """A puts the call on hold, waits args.hold seconds, takes it off hold."""
    result["hold_at"] = time.time()
    try:
        if args.hold_dir == "inactive":
            prm = pj.CallOpParam(True)
            prm.opt.flag = pj.PJSUA_CALL_SET_MEDIA_DIR
            prm.opt.mediaDir.append(pj.PJMEDIA_DIR_NONE)
            call.reinvite(prm)
        else:
            call.setHold(pj.CallOpParam(True))
    except pj.Error as e:
        ERRORS.append(f"hold: {e.info()}")
    runner.pump(args.hold, lambda: call.disconnected_at is not None)
    if call.disconnected_at is not None:
        return
    result["unhold_at"] = time.time()
    prm = pj.CallOpParam(True)
    prm.opt.flag = pj.PJSUA_CALL_UNHOLD
    if args.hold_dir == "inactive":
        # A media direction once set sticks to later re-INVITEs: set it back explicitly.
        prm.opt.flag |= pj.PJSUA_CALL_SET_MEDIA_DIR
        prm.opt.mediaDir.append(pj.PJMEDIA_DIR_ENCODING_DECODING)
    try:
        call.reinvite(prm)
    except pj.Error as e:
        ERRORS.append(f"reinvite (unhold): {e.info()}")
    runner.pump(args.talk_after, lambda: call.disconnected_at is not None)


def stop_media(runner, result):
    """No more RTP from this process: the conference bridge loses its clock (the null sound
    device), so no stream is asked for a frame to send; SIP keeps working."""
    result["media_stopped_at"] = time.time()
    runner.ep.audDevManager().setNoDev()
    log("media stopped (setNoDev)")


def wait_recordings(runner, paths, freqs, starts, windows):
    """Players/recorders must be dropped first; the bridge removes their ports (and the writer
    finalises its WAV header) asynchronously, so keep pumping until the files read back."""
    audio = {}
    deadline = time.time() + 3
    while True:
        runner.pump(0.2)
        pending = []
        for who, path in paths.items():
            if who in audio or not path or not os.path.exists(path):
                continue
            try:
                audio[who] = analyse(path, freqs, starts.get(who), windows)
            except (wave.Error, EOFError, ValueError, struct.error) as e:
                pending.append(f"{who}: {path}: {e}")
        if not pending:
            break
        if time.time() >= deadline:
            ERRORS.extend(f"cannot analyse {p}" for p in pending)
            break
    return audio


def scenario_call(runner, args):
    a = runner.phone(args.caller, tone=args.tone_a)
    b = runner.phone(
        args.callee, tone=args.tone_b, answer_code=args.answer_code, answer_delay=args.answer_delay
    )
    c = None
    if args.callee2:
        c = runner.phone(
            args.callee2,
            tone=args.tone_c,
            answer_code=args.answer_code2,
            answer_delay=args.answer_delay2,
        )
    register = {"a": runner.wait_registered(a), "b": runner.wait_registered(b)}
    if c is not None:
        register["c"] = runner.wait_registered(c)
    result = {"transport": args.transport, "register": register}
    callees = [b] + ([c] if c is not None else [])

    def callee_calls():
        return [x for p in callees for x in p.calls]

    callee_user = args.dial or args.callee.partition(":")[0]
    call = PhoneCall(a)
    a.calls.append(call)
    op = pj.CallOpParam(True)
    if args.no_sdp_offer:
        op.opt.flag |= pj.PJSUA_CALL_NO_SDP_OFFER
    call.invite_at = time.time()
    call.makeCall(f"sip:{callee_user}@{args.switch}{runner.uri_params()}", op)
    runner.pump(
        args.setup_timeout if args.cancel_after is None else args.cancel_after,
        lambda: call.confirmed_at is not None or call.disconnected_at is not None,
    )
    if call.confirmed_at is not None and call.disconnected_at is None:
        if args.media_stop_after is not None:
            runner.pump(args.media_stop_after, lambda: call.disconnected_at is not None)
            for x in [call] + callee_calls():
                if x.disconnected_at is None:
                    x.snapshot_rtp()
            stop_media(runner, result)
        runner.pump(args.talk, lambda: call.disconnected_at is not None)
        if args.hold is not None and call.disconnected_at is None:
            hold_and_unhold(runner, call, args, result)
        if args.dtmf and call.disconnected_at is None:
            prm = pj.CallSendDtmfParam()
            prm.digits = args.dtmf
            prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
            try:
                call.sendDtmf(prm)
            except pj.Error as e:
                ERRORS.append(f"sendDtmf: {e.info()}")
            runner.pump(
                0.5 * len(args.dtmf) + 1.0,
                lambda: sum(len(x.dtmf) for x in callee_calls()) >= len(args.dtmf)
                or call.disconnected_at is not None,
            )
            runner.pump(0.5, lambda: call.disconnected_at is not None)
        if args.media_stop_after is None:
            for x in [call] + callee_calls():
                if x.disconnected_at is None:
                    x.snapshot_rtp()
        if call.disconnected_at is None:
            result["hangup_at"] = time.time()
            answered = [x for x in callee_calls() if x.confirmed_at is not None]
            if args.hangup == "callee" and answered:
                answered[0].hangup_now()
            else:
                call.hangup_now()
    elif args.cancel_after is not None and call.disconnected_at is None:
        call.hangup_now()
    runner.pump(
        5,
        lambda: call.disconnected_at is not None
        and all(x.disconnected_at for x in callee_calls()),
    )
    result["caller"] = call.summary()
    result["callee"] = b.calls[0].summary() if b.calls else None
    result["callee_calls"] = len(b.calls)
    if c is not None:
        result["callee2"] = c.calls[0].summary() if c.calls else None
        result["callee2_calls"] = len(c.calls)
    freqs = [args.tone_a, args.tone_b] + ([args.tone_c] if c is not None else [])
    # --listen-freqs (music on hold, prompts …) come after the phones' tones (letters d, e …).
    freqs += [f for f in listen_freqs(args, []) if f not in freqs]
    windows = {}
    if "hold_at" in result:
        hold_at = result["hold_at"]
        # Up to the unhold, or to the end of A's call if the hold never ended.
        held_to = result.get("unhold_at") or a.calls[0].disconnected_at or time.time()
        windows["before_hold"] = (hold_at - 1.5, hold_at)
        windows["held"] = (hold_at + 0.5, held_to)
        if "unhold_at" in result and "hangup_at" in result:
            windows["after_unhold"] = (result["hangup_at"] - 1.5, result["hangup_at"])
    # Drop players/recorders before reading the recordings back.
    for x in [call] + callee_calls():
        x.player = None
        x.recorder = None
        x.clock = None
    call = x = None
    gc.collect()
    if "media_stopped_at" in result:
        # Without the bridge's clock the recorders are never finalised: nothing to analyse.
        result["audio"] = {}
        return result
    paths, starts = {}, {}
    for who, phone in [("caller", a), ("callee", b), ("callee2", c)]:
        if phone is not None and phone.calls:
            paths[who] = phone.calls[0].record_path
            starts[who] = phone.calls[0].media_at
    result["audio"] = wait_recordings(runner, paths, freqs, starts, windows)
    return result


def scenario_answer(runner, args):
    """B on its own: answers, plays its tone, optionally vanishes --die-after the answer."""
    b = runner.phone(
        args.phone,
        tone=args.tone_b,
        answer_code=args.answer_code,
        answer_delay=args.answer_delay,
        source=own_source(args),
    )
    code = runner.wait_registered(b)
    runner.event("registered", code=code)
    result = {"register": code}
    if code != 200:
        return result
    runner.pump(args.setup_timeout, lambda: any(x.confirmed_at for x in b.calls))
    if args.die_after is not None and b.calls and b.calls[0].disconnected_at is None:
        runner.pump(args.die_after, lambda: b.calls[0].disconnected_at is not None)
        if b.calls[0].disconnected_at is None:
            b.calls[0].snapshot_rtp()
            runner.event("dying", callee=b.calls[0].summary())
            sys.stderr.flush()
            # No BYE, no un-REGISTER, no RTP from here on: the phone vanishes.
            os._exit(9)
    runner.pump(args.talk, lambda: all(x.disconnected_at for x in b.calls))
    if b.calls and b.calls[0].disconnected_at is None:
        # --talk is over: B hangs up (BYE, or a final response if it never answered).
        if b.calls[0].confirmed_at is not None:
            b.calls[0].snapshot_rtp()
        b.calls[0].hangup_now()
        runner.pump(3, lambda: b.calls[0].disconnected_at is not None)
    result["callee"] = b.calls[0].summary() if b.calls else None
    result["callee_calls"] = len(b.calls)
    if b.calls:
        path, start = b.calls[0].record_path, b.calls[0].media_at
        for x in b.calls:
            x.player = None
            x.dtmf_player = None
            x.recorder = None
            x.clock = None
        x = None
        gc.collect()
        if path:
            result["audio"] = wait_recordings(
                runner, {"callee": path}, listen_freqs(args, [args.tone_a, args.tone_b]),
                {"callee": start}, {}
            )
    return result


def own_source(args):
    """The audio a scenario's own phone sends: --play-wav, --no-tone or its looping tone."""
    if args.play_wav:
        return os.path.abspath(args.play_wav)
    if args.no_tone:
        return None
    return "tone"


def dtmf_plan(args):
    """[(seconds after the answer, digits)]: --dtmf "12,#" with --dtmf-at "1,3.5" sends "12"
    1 s and "#" 3.5 s after the answer."""
    if not args.dtmf:
        return []
    groups = [g for g in args.dtmf.split(",") if g]
    ats = [float(x) for x in str(args.dtmf_at).split(",") if x.strip()]
    if len(ats) == 1 and len(groups) > 1:
        ats = [ats[0] + 0.5 * i for i in range(len(groups))]
    if len(ats) != len(groups):
        raise SystemExit(f"--dtmf has {len(groups)} groups but --dtmf-at {len(ats)} times")
    return sorted(zip(ats, groups))


def talk(runner, call, args, seconds):
    """The answered call for up to `seconds` after the answer, sending the planned DTMF on
    time; returns when the time is up or the call has ended."""
    end = call.confirmed_at + seconds
    pending = [(call.confirmed_at + at, "dtmf", digits) for at, digits in dtmf_plan(args)]

    def ended():
        return call.disconnected_at is not None

    while not ended():
        now = time.time()
        due = [p for p in pending if p[0] <= now]
        for item in due:
            pending.remove(item)
            _, kind, digits = item
            if kind == "dtmf":
                took = call.send_dtmf(digits, args.dtmf_method, args.dtmf_duration)
                if args.dtmf_method == "inband":
                    pending.append((time.time() + took, "inband_done", len(call.dtmf_sent)))
            elif kind == "inband_done" and digits == len(call.dtmf_sent):
                # (Only the last group's end: an earlier one's was cut short by it.)
                call.inband_done()
        if due:
            continue
        if now >= end:
            break
        nxt = min([end] + [p[0] for p in pending])
        runner.pump(max(nxt - now, 0.0), ended)
    for _, kind, digits in pending:
        if kind == "dtmf":
            log(f"DTMF {digits} not sent: the call ended first")


def scenario_dial(runner, args):
    """A on its own: calls --dial; talks (tone / WAV / nothing, DTMF) until the far end hangs
    up, or hangs up itself after --hangup-after (or at the latest --talk) seconds of talk."""
    a = runner.phone(args.caller, tone=args.tone_a, source=own_source(args))
    result = {"register": {"a": runner.wait_registered(a)}}
    call = PhoneCall(a)
    a.calls.append(call)
    call.invite_at = time.time()
    call.event("invite")
    op = pj.CallOpParam(True)
    if args.no_sdp_offer:
        op.opt.flag |= pj.PJSUA_CALL_NO_SDP_OFFER
    call.makeCall(f"sip:{args.dial}@{args.switch}{runner.uri_params()}", op)
    runner.pump(
        args.setup_timeout,
        lambda: call.confirmed_at is not None or call.disconnected_at is not None,
    )
    if call.confirmed_at is not None and call.disconnected_at is None:
        limit = args.hangup_after if args.hangup_after is not None else args.talk
        talk(runner, call, args, limit)
        if call.disconnected_at is None:
            call.snapshot_rtp()
            result["hangup_at"] = time.time()
            call.hangup_now()
    elif call.disconnected_at is None:
        # Never answered within --setup-timeout: give up (CANCEL).
        call.hangup_now()
    runner.pump(5, lambda: call.disconnected_at is not None)
    summary = call.summary()
    result["caller"] = summary
    for key in ("hungup_locally", "invite_code", "last_code", "talk_seconds",
                "connect_duration", "dtmf_received", "dtmf_sent", "events"):
        result[key] = summary[key]
    call.player = None
    call.dtmf_player = None
    call.recorder = None
    call.clock = None
    call = None
    gc.collect()
    path = a.calls[0].record_path
    result["audio"] = wait_recordings(
        runner, {"caller": path}, listen_freqs(args, [args.tone_a, args.tone_b]),
        {"caller": a.calls[0].media_at}, {}
    )
    return result


def listen_freqs(args, default):
    """--listen-freqs first (letters a, b, … in that order), then the default tones not in it."""
    extra = [int(x) for x in (args.listen_freqs or "").split(",") if x.strip()]
    return extra + [f for f in default if f not in extra]


def scenario_multi(runner, args):
    """Several phones in one process dial the same number (a conference room), one after
    the other, talk, then all hang up; each reports what it heard while all were in."""
    creds = [c for c in args.phones.split(",") if c]
    tones = [int(x) for x in args.tones.split(",") if x.strip()]
    if len(tones) < len(creds):
        raise SystemExit(f"--tones has {len(tones)} tones for {len(creds)} phones")
    silent = {int(x) for x in (args.silent or "").split(",") if x.strip()}
    phones = []
    for i, cred in enumerate(creds):
        phones.append(
            runner.phone(cred, tone=tones[i], source=None if i in silent else "tone")
        )
    regs = [runner.wait_registered(p) for p in phones]
    result = {"number": args.dial, "joins": [], "phones": []}
    plan = dtmf_plan(args)
    calls = []
    errors = {}
    for i, phone in enumerate(phones):
        if i > 0:
            runner.pump(args.join_gap)
        if regs[i] != 200:
            errors[i] = f"registration {regs[i]}"
            calls.append(None)
            continue
        call = PhoneCall(phone)
        phone.calls.append(call)
        calls.append(call)
        call.invite_at = time.time()
        call.event("invite")
        try:
            call.makeCall(
                f"sip:{args.dial}@{args.switch}{runner.uri_params()}", pj.CallOpParam(True)
            )
        except pj.Error as e:
            errors[i] = f"makeCall: {e.info()}"
            continue
        runner.pump(
            args.setup_timeout,
            lambda c=call: c.confirmed_at is not None or c.disconnected_at is not None,
        )
        if call.confirmed_at is None:
            errors[i] = f"not answered ({call.last_code})"
        elif plan:
            # The room's PIN (or any digits) right after the answer, as in `dial`.
            digits = sum(len(d) for _, d in plan)
            talk(runner, call, args, plan[-1][0] + 0.5 + 0.3 * digits)
        result["joins"].append({"index": i, "t": call.confirmed_at})
    up = [c for c in calls if c is not None]

    def all_ended():
        return all(c.disconnected_at is not None for c in up)

    all_joined_at = time.time()
    result["all_joined_at"] = all_joined_at
    runner.pump(args.talk, all_ended)
    for c in up:
        if c.disconnected_at is None:
            c.snapshot_rtp()
    hangup_at = time.time()
    result["hangup_at"] = hangup_at
    for c in up:
        if c.disconnected_at is None:
            try:
                c.hangup_now()
            except pj.Error as e:
                ERRORS.append(f"hangup: {e.info()}")
    runner.pump(5, all_ended)
    window = (all_joined_at + args.settle, hangup_at)
    result["window"] = list(window)
    summaries = [c.summary() if c is not None else None for c in calls]
    paths, starts = {}, {}
    for i, c in enumerate(calls):
        if c is not None and c.record_path:
            paths[i] = c.record_path
            starts[i] = c.media_at
    for c in up:
        c.player = None
        c.dtmf_player = None
        c.recorder = None
        c.clock = None
    c = call = None
    calls = up = None
    gc.collect()
    # The phones' tones (letters a, b, c, … in phone order), then the other --listen-freqs.
    mine = tones[: len(creds)]
    freqs = mine + [f for f in listen_freqs(args, []) if f not in mine]
    audio = wait_recordings(runner, paths, freqs, starts, {"joined": window})
    for i, cred in enumerate(creds):
        a = audio.get(i)
        w = (a or {}).get("windows", {}).get("joined")
        hears = {str(f): (w[f"{f}_share"] if w else 0.0) for f in freqs}
        others = {str(f) for j, f in enumerate(mine) if j != i}
        summary = summaries[i]
        if summary is not None and summary["last_code"] is not None and i not in errors:
            if not summary["connected"]:
                errors[i] = f"not answered ({summary['last_code']})"
        result["phones"].append(
            {
                "index": i,
                "user": cred.partition(":")[0],
                "tone": tones[i],
                "silent": i in silent,
                "register": regs[i],
                "invite_code": summary["invite_code"] if summary else None,
                "last_code": summary["last_code"] if summary else None,
                "connected": bool(summary and summary["connected"]),
                "hungup_locally": bool(summary and summary["hungup_locally"]),
                "hears": hears,
                "hears_self": hears[str(tones[i])],
                "hears_others": {k: v for k, v in hears.items() if k in others},
                "heard_seconds": w["heard_seconds"] if w else 0.0,
                "window_rms": round(w["rms"], 1) if w else 0.0,
                "call": summary,
                "audio": a,
                "error": errors.get(i),
            }
        )
    return result


SCENARIOS = {
    "register": scenario_register,
    "call": scenario_call,
    "answer": scenario_answer,
    "dial": scenario_dial,
    "multi": scenario_multi,
}


def check_args(p, args):
    """Bad combinations stop here, before any phone exists."""
    try:
        dtmf_plan(args)
        for d in (args.dtmf or "").replace(",", ""):
            dtmf_freqs(d)
        for text in (args.tones, args.silent, args.listen_freqs or ""):
            [int(x) for x in text.split(",") if x.strip()]
    except (ValueError, SystemExit) as e:
        p.error(str(e))
    if args.play_wav and not os.path.exists(args.play_wav):
        p.error(f"--play-wav {args.play_wav}: no such file")
    if args.scenario == "multi":
        if not args.phones or not args.dial:
            p.error("multi needs --phones and --dial")
        n = len([c for c in args.phones.split(",") if c])
        if len([x for x in args.tones.split(",") if x.strip()]) < n:
            p.error(f"--tones needs one tone per phone ({n})")
    if args.scenario == "dial" and not (args.caller and args.dial):
        p.error("dial needs --caller and --dial")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--switch", required=True, help="host:port of the switch")
    p.add_argument("--transport", default="udp", choices=["udp", "tcp"])
    p.add_argument("--phone")
    p.add_argument("--unregister", action="store_true")
    p.add_argument("--caller")
    p.add_argument("--callee")
    p.add_argument("--callee2", help="a third phone C, USER:PASS (rung by a group)")
    p.add_argument("--dial", help="number A dials (default: B's user)")
    p.add_argument("--tone-a", type=int, default=440)
    p.add_argument("--tone-b", type=int, default=1000)
    p.add_argument("--tone-c", type=int, default=1500)
    p.add_argument("--talk", type=float, default=3.0)
    p.add_argument("--talk-after", type=float, default=2.0, help="talk after --hold")
    p.add_argument("--hold", type=float, help="A holds for SECONDS after --talk, then unholds")
    p.add_argument(
        "--hold-dir",
        default="sendonly",
        choices=["sendonly", "inactive"],
        help="A's hold offer: a=sendonly (pjsua's setHold) or a=inactive (nobody sends RTP)",
    )
    p.add_argument("--dtmf", default="")
    p.add_argument("--hangup", default="caller", choices=["caller", "callee"])
    p.add_argument("--answer-code", type=int, default=200, help="B: 200, 1xx (ring) or refuse")
    p.add_argument("--answer-delay", type=float, default=0.5)
    p.add_argument("--answer-code2", type=int, default=200, help="C, like --answer-code")
    p.add_argument("--answer-delay2", type=float, default=0.5)
    p.add_argument("--cancel-after", type=float)
    p.add_argument("--setup-timeout", type=float, default=10.0)
    p.add_argument("--media-stop-after", type=float)
    p.add_argument("--die-after", type=float)
    p.add_argument("--expires", type=int, default=300)
    p.add_argument("--codec", help="PCMU or PCMA: the only codec enabled")
    p.add_argument(
        "--no-sdp-offer",
        action="store_true",
        help="call, dial: A's INVITE carries no SDP (delayed offer: the offer comes in the 200)",
    )
    p.add_argument(
        "--dtmf-method",
        default="rfc2833",
        choices=["rfc2833", "info", "inband"],
        help="dial: how --dtmf is sent (RFC 4733 events, SIP INFO, or tones in the audio)",
    )
    p.add_argument(
        "--dtmf-at",
        default="1.0",
        help="dial: seconds after the answer to send --dtmf; a comma list, one per group",
    )
    p.add_argument(
        "--dtmf-duration", type=int, help="dial: ms per digit (pjsua default 160; inband 100)"
    )
    p.add_argument("--hangup-after", type=float, help="dial: A hangs up SECONDS after the answer")
    p.add_argument("--no-tone", action="store_true", help="dial/answer: no player, no audio")
    p.add_argument("--play-wav", help="dial/answer: play this WAV once instead of the tone")
    p.add_argument(
        "--listen-freqs",
        help="dial/answer/multi: comma list of frequencies to look for in the recording",
    )
    p.add_argument("--phones", help="multi: USER:PASS,USER:PASS,...")
    p.add_argument("--tones", default="440,1000,1500", help="multi: one tone (Hz) per phone")
    p.add_argument("--silent", default="", help="multi: 0-based indexes of phones sending no audio")
    p.add_argument("--join-gap", type=float, default=1.0, help="multi: seconds between joins")
    p.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="multi: the analysed window starts SECONDS after the last join",
    )
    p.add_argument("--workdir")
    p.add_argument("--sip-port", type=int, default=0,
                   help="bind the SIP transport to this port (a trunk's host:port)")
    p.add_argument("--no-register", action="store_true",
                   help="send no REGISTER: calls come from --sip-port as a trunk would")
    p.add_argument("--pj-log", type=int, default=1)
    args = p.parse_args()
    check_args(p, args)
    # pjlib logs to stdout: keep stdout for the JSON lines, send everything else to stderr.
    sys.stdout.flush()
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    runner = Runner(args)
    runner.json_out = json_out
    result = {}
    try:
        result = SCENARIOS[args.scenario](runner, args)
    except Exception:  # noqa: BLE001 - reported in the JSON
        # Formatting (not keeping) the traceback: its frames would keep Calls alive past
        # libDestroy.
        text = traceback.format_exc()
        log(text)
        ERRORS.append(f"scenario failed: {text.strip().splitlines()[-1]}")
    gc.collect()
    runner.close()
    result["errors"] = ERRORS
    json_out.write(json.dumps(result) + "\n")
    json_out.flush()


if __name__ == "__main__":
    main()
