//! The call-log table `calllog`.
//!
//! Column names are exactly the field names of the CTI manual's call-log dictionary
//! (`../shared/spec/cti-api.md`, Part C), camelCase included (`beginTime`, `ivrAnwerTime`, …),
//! so raw SQL written against the reference product keeps working.
//!
//! Types: epoch-millisecond times are `BIGINT`, durations and counts `INTEGER`, `offwork` a
//! boolean; every text field is `NOT NULL` and empty when unknown (the manual's JSON emits
//! `""` for them). `record`, `question` and `stttxt` are free text (`TEXT`, no default);
//! the others are `VARCHAR(255) DEFAULT ''`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// How a column is declared.
#[derive(Clone, Copy)]
enum Kind {
    /// `VARCHAR(255) NOT NULL DEFAULT ''`.
    Short,
    /// `TEXT NOT NULL` (free text; MySQL allows no literal default on `TEXT`).
    Long,
    /// `BIGINT NOT NULL DEFAULT 0`: epoch milliseconds.
    Time,
    /// `INTEGER NOT NULL DEFAULT 0`: durations in seconds, counts, obsolete ids.
    Int,
    /// `BOOLEAN NOT NULL DEFAULT FALSE`.
    Bool,
}

/// Every column after `id`, in the order of the manual's dictionary.
const COLUMNS: &[(Calllog, Kind)] = &[
    (Calllog::Caller, Kind::Short),
    (Calllog::Callee, Kind::Short),
    (Calllog::Channel, Kind::Short),
    (Calllog::BeginTime, Kind::Time),
    (Calllog::Duration, Kind::Int),
    (Calllog::State, Kind::Short),
    (Calllog::CallType, Kind::Short),
    (Calllog::Estimate, Kind::Short),
    (Calllog::Callid, Kind::Short),
    (Calllog::Calleruid, Kind::Int),
    (Calllog::Calleeuid, Kind::Int),
    (Calllog::Record, Kind::Long),
    (Calllog::RecordVoice, Kind::Short),
    (Calllog::Cname, Kind::Short),
    (Calllog::Servicetype, Kind::Short),
    (Calllog::Manustate, Kind::Short),
    (Calllog::Question, Kind::Long),
    (Calllog::Clickcallid, Kind::Short),
    (Calllog::Clicktoken, Kind::Short),
    (Calllog::Fxonum, Kind::Short),
    (Calllog::Accessnum, Kind::Short),
    (Calllog::Productid, Kind::Int),
    (Calllog::Dtmfkey, Kind::Short),
    (Calllog::Ivrpoint, Kind::Short),
    (Calllog::Callerworknum, Kind::Short),
    (Calllog::Calleeworknum, Kind::Short),
    (Calllog::Business, Kind::Short),
    (Calllog::Prerecord, Kind::Short),
    (Calllog::Robotrecord, Kind::Short),
    (Calllog::Earlymedia, Kind::Short),
    (Calllog::Ivrvoicemail, Kind::Short),
    (Calllog::IvrAnwerTime, Kind::Time),
    (Calllog::IvrAnwerDuration, Kind::Int),
    (Calllog::QueueTime, Kind::Time),
    (Calllog::QueueDuration, Kind::Int),
    (Calllog::RingTime, Kind::Time),
    (Calllog::RingDuration, Kind::Int),
    (Calllog::PickupTime, Kind::Time),
    (Calllog::Offwork, Kind::Bool),
    (Calllog::Standby, Kind::Int),
    (Calllog::Writetime, Kind::Int),
    (Calllog::Holdtime, Kind::Int),
    (Calllog::Forward, Kind::Short),
    (Calllog::Stttxt, Kind::Long),
    (Calllog::Hungupside, Kind::Short),
    (Calllog::Callervideo, Kind::Short),
    (Calllog::Calleevideo, Kind::Short),
    (Calllog::Peercallid, Kind::Short),
];

/// Indexed columns: (index name, column).
const INDEXES: &[(&str, Calllog)] = &[
    ("idx_calllog_callid", Calllog::Callid),
    ("idx_calllog_begintime", Calllog::BeginTime),
    ("idx_calllog_caller", Calllog::Caller),
    ("idx_calllog_callee", Calllog::Callee),
    ("idx_calllog_clickcallid", Calllog::Clickcallid),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut table = Table::create();
        table
            .table(Calllog::Table)
            .if_not_exists()
            .col(big_pk_auto(Calllog::Id));
        for (c, kind) in COLUMNS {
            let mut col = match kind {
                Kind::Short => string_len(*c, 255).default("").take(),
                Kind::Long => text(*c),
                Kind::Time => big_integer(*c).default(0).take(),
                Kind::Int => integer(*c).default(0).take(),
                Kind::Bool => boolean(*c).default(false).take(),
            };
            table.col(&mut col);
        }
        crate::create_table(manager, table.to_owned()).await?;

        for (name, col) in INDEXES {
            manager
                .create_index(
                    Index::create()
                        .name(*name)
                        .table(Calllog::Table)
                        .col(*col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Calllog::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Calllog {
    Table,
    Id,
    Caller,
    Callee,
    Channel,
    #[sea_orm(iden = "beginTime")]
    BeginTime,
    Duration,
    State,
    #[sea_orm(iden = "callType")]
    CallType,
    Estimate,
    Callid,
    Calleruid,
    Calleeuid,
    Record,
    #[sea_orm(iden = "recordVoice")]
    RecordVoice,
    Cname,
    Servicetype,
    Manustate,
    Question,
    Clickcallid,
    Clicktoken,
    Fxonum,
    Accessnum,
    Productid,
    Dtmfkey,
    Ivrpoint,
    Callerworknum,
    Calleeworknum,
    Business,
    Prerecord,
    Robotrecord,
    Earlymedia,
    Ivrvoicemail,
    #[sea_orm(iden = "ivrAnwerTime")]
    IvrAnwerTime,
    #[sea_orm(iden = "ivrAnwerDuration")]
    IvrAnwerDuration,
    #[sea_orm(iden = "queueTime")]
    QueueTime,
    #[sea_orm(iden = "queueDuration")]
    QueueDuration,
    #[sea_orm(iden = "ringTime")]
    RingTime,
    #[sea_orm(iden = "ringDuration")]
    RingDuration,
    #[sea_orm(iden = "pickupTime")]
    PickupTime,
    Offwork,
    Standby,
    Writetime,
    Holdtime,
    Forward,
    Stttxt,
    Hungupside,
    Callervideo,
    Calleevideo,
    Peercallid,
}
