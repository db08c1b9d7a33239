//! The decisions of a call queue, as plain functions over plain data (no actix): which
//! waiting caller is served next, and which agents its call is offered to. The `Queue`
//! actor keeps the state and calls these; tests drive them without sockets or clocks.
//!
//! - Callers are served by effective waiting time: the time waited plus 30 s per VIP
//!   level (interface 39) and per `queue_priority` (interface 12); ties go to whoever
//!   joined first. The order is total and deterministic.
//! - Agents: only free ones are offered (registered, phone idle, not ringing for another
//!   call, wrap-up over, presence `online` or `reducing`). `reducing` agents are offered a
//!   call only when no `online` agent is free. Among those, the group's best member
//!   priority (lowest number) goes first, then the strategy decides.

use entities::call_group::Strategy;

/// A VIP level or a queue priority of 1 is worth this much waiting (milliseconds).
pub const PRIORITY_STEP_MS: i64 = 30_000;

/// One waiting caller, as the ordering sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitKey {
    pub enqueued_ms: i64,
    pub vip_level: u32,
    pub queue_priority: u32,
    /// Arrival order in this queue (breaks ties).
    pub seq: u64,
}

impl WaitKey {
    /// Smaller is served first: the arrival time moved back by the bonuses.
    pub fn rank(&self) -> (i64, u64) {
        let bonus = i64::from(self.vip_level + self.queue_priority) * PRIORITY_STEP_MS;
        (self.enqueued_ms - bonus, self.seq)
    }

    /// Seconds waited, with the bonuses, at `now_ms`.
    pub fn effective_wait_ms(&self, now_ms: i64) -> i64 {
        now_ms - self.rank().0
    }
}

/// Index of the caller to serve next among `waiting` (those eligible), if any.
pub fn next_caller<'a>(waiting: impl Iterator<Item = (usize, &'a WaitKey)>) -> Option<usize> {
    waiting.min_by_key(|(_, k)| k.rank()).map(|(i, _)| i)
}

/// An agent as the queue sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentView {
    pub number: String,
    /// Member priority in this group: lower is offered first.
    pub priority: i32,
    /// Position in the group's member list (round-robin order, last tie-break).
    pub order: usize,
    /// Free to take a call now.
    pub free: bool,
    /// Presence `reducing`: offered calls only when no `online` agent is free.
    pub reducing: bool,
    /// Epoch ms since when the agent is idle (longest-idle).
    pub idle_since_ms: i64,
    /// Calls the agent answered (fewest-calls).
    pub answered_calls: u32,
}

/// The agents to ring for one caller: several for ring-all, else one. `skip` are agents
/// this caller already rang without an answer (they are tried again only when nobody
/// else is free). `cursor` is the round-robin position, advanced past the agent chosen;
/// `random` is a fresh random number.
pub fn pick_agents(
    strategy: Strategy,
    agents: &[AgentView],
    skip: &[String],
    cursor: &mut usize,
    random: u64,
) -> Vec<String> {
    let free: Vec<&AgentView> = agents.iter().filter(|a| a.free).collect();
    let fresh: Vec<&AgentView> = free
        .iter()
        .copied()
        .filter(|a| !skip.contains(&a.number))
        .collect();
    let pool = if fresh.is_empty() { free } else { fresh };
    let online: Vec<&AgentView> = pool.iter().copied().filter(|a| !a.reducing).collect();
    let pool = if online.is_empty() { pool } else { online };
    let Some(best) = pool.iter().map(|a| a.priority).min() else {
        return Vec::new();
    };
    let mut pool: Vec<&AgentView> = pool.into_iter().filter(|a| a.priority == best).collect();
    pool.sort_by_key(|a| a.order);
    let chosen = match strategy {
        Strategy::RingAll => return pool.iter().map(|a| a.number.clone()).collect(),
        Strategy::RoundRobin => pool
            .iter()
            .find(|a| a.order >= *cursor)
            .or_else(|| pool.first())
            .copied(),
        Strategy::LongestIdle => pool
            .iter()
            .min_by_key(|a| (a.idle_since_ms, a.order))
            .copied(),
        Strategy::FewestCalls => pool
            .iter()
            .min_by_key(|a| (a.answered_calls, a.idle_since_ms, a.order))
            .copied(),
        Strategy::Random => pool.get((random % pool.len() as u64) as usize).copied(),
    };
    match chosen {
        Some(a) => {
            *cursor = a.order + 1;
            vec![a.number.clone()]
        }
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(number: &str, order: usize) -> AgentView {
        AgentView {
            number: number.into(),
            priority: 0,
            order,
            free: true,
            reducing: false,
            idle_since_ms: 1_000,
            answered_calls: 0,
        }
    }

    #[test]
    fn vip_and_queue_priority_move_a_caller_forward_by_30_s_per_level() {
        let plain = WaitKey {
            enqueued_ms: 100_000,
            vip_level: 0,
            queue_priority: 0,
            seq: 1,
        };
        // Came 50 s later with VIP level 2 (60 s): ahead.
        let vip = WaitKey {
            enqueued_ms: 150_000,
            vip_level: 2,
            queue_priority: 0,
            seq: 2,
        };
        // Came 20 s later with queue_priority 1 (30 s): ahead of plain, behind vip.
        let sent_back = WaitKey {
            enqueued_ms: 120_000,
            vip_level: 0,
            queue_priority: 1,
            seq: 3,
        };
        let waiting = [plain, vip, sent_back];
        assert_eq!(next_caller(waiting.iter().enumerate()), Some(1));
        assert_eq!(
            next_caller(waiting.iter().enumerate().filter(|(i, _)| *i != 1)),
            Some(2)
        );
        // Equal rank: the one who came first.
        let twin = WaitKey { seq: 4, ..plain };
        assert_eq!(next_caller([twin, plain].iter().enumerate()), Some(1));
        assert_eq!(vip.effective_wait_ms(160_000), 70_000);
    }

    #[test]
    fn strategies_choose_as_specified() {
        let mut agents = vec![agent("801", 0), agent("802", 1), agent("803", 2)];
        agents[0].idle_since_ms = 5_000;
        agents[1].idle_since_ms = 2_000;
        agents[2].idle_since_ms = 3_000;
        agents[0].answered_calls = 1;
        agents[1].answered_calls = 4;
        agents[2].answered_calls = 1;
        let mut cursor = 0;
        assert_eq!(
            pick_agents(Strategy::RingAll, &agents, &[], &mut cursor, 0),
            vec!["801", "802", "803"]
        );
        assert_eq!(
            pick_agents(Strategy::LongestIdle, &agents, &[], &mut cursor, 0),
            vec!["802"]
        );
        // Fewest calls: 801 and 803 have 1; 803 has been idle longer.
        assert_eq!(
            pick_agents(Strategy::FewestCalls, &agents, &[], &mut cursor, 0),
            vec!["803"]
        );
        let mut cursor = 0;
        let rr: Vec<Vec<String>> = (0..4)
            .map(|_| pick_agents(Strategy::RoundRobin, &agents, &[], &mut cursor, 0))
            .collect();
        assert_eq!(rr, vec![vec!["801"], vec!["802"], vec!["803"], vec!["801"]]);
        assert_eq!(
            pick_agents(Strategy::Random, &agents, &[], &mut 0, 7),
            vec!["802"]
        );
    }

    #[test]
    fn busy_reducing_priority_and_already_tried_agents() {
        let mut agents = vec![agent("801", 0), agent("802", 1), agent("803", 2)];
        agents[0].free = false; // on a call, in wrap-up, busy or offline
        agents[1].reducing = true;
        let mut cursor = 0;
        // 803 online and free beats 802 reducing.
        assert_eq!(
            pick_agents(Strategy::LongestIdle, &agents, &[], &mut cursor, 0),
            vec!["803"]
        );
        // 803 rang this caller already: 802 (reducing) before trying 803 again.
        assert_eq!(
            pick_agents(
                Strategy::LongestIdle,
                &agents,
                &["803".into()],
                &mut cursor,
                0
            ),
            vec!["802"]
        );
        // Everyone free was tried: try them again rather than nobody.
        assert_eq!(
            pick_agents(
                Strategy::LongestIdle,
                &agents,
                &["802".into(), "803".into()],
                &mut cursor,
                0
            ),
            vec!["803"]
        );
        // Member priority: a priority-0 member goes before priority-1 ones.
        agents[0].free = true;
        agents[0].priority = 1;
        agents[2].priority = 1;
        agents[1].reducing = false;
        assert_eq!(
            pick_agents(Strategy::RingAll, &agents, &[], &mut cursor, 0),
            vec!["802"]
        );
        agents.iter_mut().for_each(|a| a.free = false);
        assert!(pick_agents(Strategy::RingAll, &agents, &[], &mut cursor, 0).is_empty());
    }
}
