//! The lists every call consults before it is routed, held in memory: the blacklist
//! (interface 38, with the `blacklist.forbit.duration` expiry), VIP levels (39), the
//! time-based routing rules (61) and the access numbers. Without them each call made five
//! to eight database round trips before its first ring; under load those queued behind
//! each other in the connection pool.
//!
//! The copy is loaded at start, again whenever the configuration changes through the API
//! (the router's `ReloadDirectory`, awaited by the handler: the next call sees the change)
//! and every [`REFRESH_INTERVAL`] (changes made to the database directly). One blacklist or
//! VIP entry changed through interfaces 38/39 is applied in place ([`ListChange`]): a CRM
//! importing a do-not-call list one number per request must not reload the whole list
//! per number. A copy that fails to load keeps the previous one. Plain Rust: no actix.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use entities::repo;
use entities::routing_rule;
use sea_orm::DatabaseConnection;

/// How often the copy is refreshed from the database even when nobody said it changed.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// One entry of the blacklist or the VIP list, changed through the API after its database
/// write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListChange {
    /// Added (or its add time refreshed) at `at_ms`.
    BlacklistAdded {
        telnum: String,
        at_ms: i64,
    },
    BlacklistRemoved {
        telnum: String,
    },
    VipSet {
        telnum: String,
        level: u32,
    },
    VipRemoved {
        telnum: String,
    },
}

/// A copy of the lists. The blacklist and the VIP levels change in place, one entry at a
/// time; the rest only by a whole new copy.
#[derive(Debug, Default)]
pub struct Lists {
    /// Blacklisted number → when it was (last) added, epoch ms.
    blacklist: RwLock<HashMap<String, i64>>,
    /// `blacklist.forbit.duration` in hours (`None`: entries never expire).
    forbid_hours: Option<u32>,
    vip_levels: RwLock<HashMap<String, u32>>,
    /// Enabled rules by called number, by id.
    rules: HashMap<String, Vec<routing_rule::Model>>,
    access_numbers: HashSet<String>,
}

impl Lists {
    /// Reads every list from the database.
    pub async fn load(db: &DatabaseConnection) -> Result<Self, entities::Error> {
        let blacklist = RwLock::new(
            repo::blacklist::all(db)
                .await?
                .into_iter()
                .map(|e| (e.telnum, e.created_at))
                .collect(),
        );
        let forbid_hours = repo::blacklist::forbid_hours(db).await?;
        let vip_levels = RwLock::new(
            repo::vip::all(db)
                .await?
                .into_iter()
                .map(|e| (e.telnum, u32::try_from(e.viplevel).unwrap_or(0)))
                .collect(),
        );
        let mut rules: HashMap<String, Vec<routing_rule::Model>> = HashMap::new();
        for rule in repo::routing_rules::list(db).await? {
            if rule.offon {
                rules.entry(rule.telnum.clone()).or_default().push(rule);
            }
        }
        let access_numbers = repo::access_numbers::list(db)
            .await?
            .into_iter()
            .map(|a| a.number)
            .collect();
        Ok(Self {
            blacklist,
            forbid_hours,
            vip_levels,
            rules,
            access_numbers,
        })
    }

    /// Whether calls from or to `number` are refused at `now_ms` (same rule as
    /// [`repo::blacklist::is_listed`]).
    pub fn is_blacklisted(&self, number: &str, now_ms: i64) -> bool {
        read(&self.blacklist)
            .get(number)
            .is_some_and(|&added| repo::blacklist::blocks(added, now_ms, self.forbid_hours))
    }

    /// The VIP level of `number` (0: an ordinary caller).
    pub fn vip_level(&self, number: &str) -> u32 {
        read(&self.vip_levels).get(number).copied().unwrap_or(0)
    }

    fn apply(&self, change: ListChange) {
        match change {
            ListChange::BlacklistAdded { telnum, at_ms } => {
                write(&self.blacklist).insert(telnum, at_ms);
            }
            ListChange::BlacklistRemoved { telnum } => {
                write(&self.blacklist).remove(&telnum);
            }
            ListChange::VipSet { telnum, level } => {
                write(&self.vip_levels).insert(telnum, level);
            }
            ListChange::VipRemoved { telnum } => {
                write(&self.vip_levels).remove(&telnum);
            }
        }
    }

    /// The enabled routing rules of the called number `telnum`, by id.
    pub fn rules_for(&self, telnum: &str) -> &[routing_rule::Model] {
        self.rules.get(telnum).map_or(&[], Vec::as_slice)
    }

    pub fn is_access_number(&self, number: &str) -> bool {
        self.access_numbers.contains(number)
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The current copy, shared by every call (cheap reads: an `Arc` clone under a read lock).
#[derive(Debug, Default)]
pub struct RoutingLists {
    current: RwLock<Arc<Lists>>,
    /// One reload at a time: a reload that read the database before a write must not
    /// install its copy after the reload that followed the write.
    reloading: tokio::sync::Mutex<()>,
}

impl RoutingLists {
    /// Loaded from the database now.
    pub async fn load(db: &DatabaseConnection) -> Result<Self, entities::Error> {
        Ok(Self {
            current: RwLock::new(Arc::new(Lists::load(db).await?)),
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// The copy in force now.
    pub fn snapshot(&self) -> Arc<Lists> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Applies one entry changed through the API (after its database write). Waits for a
    /// reload in progress, so that reload's older copy cannot undo the change.
    pub async fn apply(&self, change: ListChange) {
        let _one_at_a_time = self.reloading.lock().await;
        self.snapshot().apply(change);
    }

    /// Reads the lists again; on failure the previous copy stays in force.
    pub async fn reload(&self, db: &DatabaseConnection) -> Result<(), entities::Error> {
        let _one_at_a_time = self.reloading.lock().await;
        let lists = Arc::new(Lists::load(db).await?);
        match self.current.write() {
            Ok(mut guard) => *guard = lists,
            Err(poisoned) => *poisoned.into_inner() = lists,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: i64 = 3_600_000;

    #[test]
    fn blacklist_entries_expire_by_the_setting() {
        let now = 1_000 * HOUR_MS;
        let mut lists = Lists {
            blacklist: RwLock::new(
                [("100".into(), now - 25 * HOUR_MS), ("200".into(), now)].into(),
            ),
            ..Lists::default()
        };
        assert!(lists.is_blacklisted("100", now));
        assert!(lists.is_blacklisted("200", now));
        assert!(!lists.is_blacklisted("300", now));
        lists.forbid_hours = Some(24);
        assert!(
            !lists.is_blacklisted("100", now),
            "added 25 h ago, 24 h expiry"
        );
        assert!(lists.is_blacklisted("200", now));
    }

    #[test]
    fn unknown_numbers_have_no_level_rules_or_access() {
        let lists = Lists {
            vip_levels: RwLock::new([("135".into(), 3)].into()),
            access_numbers: ["1000".into()].into(),
            ..Lists::default()
        };
        assert_eq!(lists.vip_level("135"), 3);
        assert_eq!(lists.vip_level("136"), 0);
        assert!(lists.rules_for("1000").is_empty());
        assert!(lists.is_access_number("1000"));
        assert!(!lists.is_access_number("1001"));
    }

    #[tokio::test]
    async fn entries_change_in_place() {
        let lists = RoutingLists::default();
        let now = 1_000 * HOUR_MS;
        let held = lists.snapshot();
        lists
            .apply(ListChange::BlacklistAdded {
                telnum: "555".into(),
                at_ms: now,
            })
            .await;
        lists
            .apply(ListChange::VipSet {
                telnum: "136".into(),
                level: 4,
            })
            .await;
        assert!(
            held.is_blacklisted("555", now),
            "a copy held by a call sees it too"
        );
        assert_eq!(lists.snapshot().vip_level("136"), 4);
        lists
            .apply(ListChange::BlacklistRemoved {
                telnum: "555".into(),
            })
            .await;
        lists
            .apply(ListChange::VipRemoved {
                telnum: "136".into(),
            })
            .await;
        assert!(!lists.snapshot().is_blacklisted("555", now));
        assert_eq!(lists.snapshot().vip_level("136"), 0);
    }
}
