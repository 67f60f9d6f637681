//! The store test suite, written once and run on SQLite and PostgreSQL.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use herald::channel::Channel;
use herald::client::consent::{ConsentChange, ConsentScope, ConsentSource};
use herald::client::row::{Column, RowBuilder};
use herald::client::types::ClientId;
use herald::client::ClientRecord;
use herald::event::{EventKind, NewEvent};
use herald::store::{EventOutcome, RowChange, Store};
use serde_json::json;

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 1, 2, 3).unwrap()
}

fn record(pairs: &[(&str, &str)]) -> ClientRecord {
    let mut b = RowBuilder::new();
    for (k, v) in pairs {
        match Column::from_header(k) {
            Column::Known(f) => b.set(f, v),
            Column::Attribute(a) => b.set_attribute(&a, json!(v)),
        }
    }
    b.finish().expect("test row is valid")
}

fn id(s: &str) -> ClientId {
    ClientId::parse(s).unwrap()
}

async fn write(
    store: &dyn Store,
    batch: &[ClientRecord],
    when: DateTime<Utc>,
) -> Vec<herald::store::RowOutcome> {
    let mut w = store.client_writer(false).await.unwrap();
    let out = w.write(batch, when).await.unwrap();
    w.commit().await.unwrap();
    out
}

fn opt_out(
    client: &str,
    scope: ConsentScope,
    source: ConsentSource,
    when: DateTime<Utc>,
) -> ConsentChange {
    ConsentChange {
        client_id: id(client),
        scope,
        granted: false,
        source,
        at: when,
        actor: None,
        note: Some("TD".into()),
    }
}

async fn every_field_round_trips(store: &dyn Store) {
    let r = record(&[
        ("id", "000123"),
        ("name", "张三"),
        ("email", "zhang@example.com"),
        ("phone", "13812345678"),
        ("branch", "上海浦东新区世纪大道证券营业部"),
        ("advisor", "李经理"),
        ("risk_level", "C4"),
        ("assets", "1234567.89"),
        ("tags", "vip;margin"),
        ("holdings", "600519;000001"),
        ("watchlist", "300750"),
        ("birthday", "1980-02-29"),
        ("opened_on", "2010-05-06"),
        ("last_trade_on", "2026-11-20"),
        ("consent_email", "true"),
        ("consent_sms", "false"),
        ("investor_type", "professional_b"),
        ("lowest_risk_category", "false"),
        ("risk_assessed_on", "2025-06-30"),
        ("personalised_marketing", "false"),
        ("city", "上海"),
    ]);
    let out = write(store, std::slice::from_ref(&r), at(1)).await;
    assert_eq!(out[0].change, RowChange::Inserted);
    let stored = store.client(&id("000123")).await.unwrap().expect("stored");
    assert_eq!(stored.client, r.client, "profile round-trips exactly");
    assert!(stored.consent(ConsentScope::Email).granted);
    assert!(!stored.consent(ConsentScope::Sms).granted);
    assert!(!stored.consent(ConsentScope::PersonalisedMarketing).granted);
    assert_eq!(
        stored.consent(ConsentScope::Email).source,
        ConsentSource::Import
    );
    assert_eq!(stored.consent(ConsentScope::Email).at, at(1));
    assert_eq!(stored.created_at, at(1));
    assert!(
        store.client(&id("123")).await.unwrap().is_none(),
        "leading zeros are part of the id"
    );
    assert_eq!(store.count_clients().await.unwrap(), 1);
}

async fn a_new_client_gets_the_documented_consent_defaults(store: &dyn Store) {
    write(store, &[record(&[("id", "1"), ("name", "甲")])], at(1)).await;
    let c = store.client(&id("1")).await.unwrap().unwrap();
    assert!(!c.consent(ConsentScope::Email).granted);
    assert!(!c.consent(ConsentScope::Sms).granted);
    assert!(c.consent(ConsentScope::PersonalisedMarketing).granted);
    assert_eq!(store.consent_history(&id("1")).await.unwrap().len(), 3);
}

async fn reimport_tells_unchanged_from_updated(store: &dyn Store) {
    let a = record(&[("id", "1"), ("name", "甲"), ("assets", "100")]);
    let b = record(&[("id", "2"), ("name", "乙"), ("consent_sms", "true")]);
    write(store, &[a.clone(), b.clone()], at(1)).await;
    let a2 = record(&[("id", "1"), ("name", "甲"), ("assets", "200")]);
    let b2 = record(&[("id", "2"), ("name", "乙"), ("consent_sms", "false")]);
    let c = record(&[("id", "3"), ("name", "丙")]);
    let out = write(store, &[a.clone(), b.clone(), a2, b2, c], at(2)).await;
    let changes: Vec<RowChange> = out.iter().map(|o| o.change).collect();
    use RowChange::*;
    assert_eq!(
        changes,
        vec![Unchanged, Unchanged, Updated, Updated, Inserted]
    );
    let one = store.client(&id("1")).await.unwrap().unwrap();
    assert_eq!(one.client.assets.unwrap().fen(), 20_000);
    assert_eq!(one.created_at, at(1), "an update keeps the creation time");
    assert_eq!(one.updated_at, at(2));
    assert!(
        !store
            .client(&id("2"))
            .await
            .unwrap()
            .unwrap()
            .consent(ConsentScope::Sms)
            .granted
    );
}

async fn an_opt_out_herald_recorded_survives_a_reimport(store: &dyn Store) {
    let row = record(&[
        ("id", "9"),
        ("name", "丁"),
        ("consent_sms", "true"),
        ("consent_email", "true"),
    ]);
    write(store, std::slice::from_ref(&row), at(1)).await;
    let recorded = store
        .record_consent(&opt_out(
            "9",
            ConsentScope::Sms,
            ConsentSource::SmsReply,
            at(2),
        ))
        .await
        .unwrap();
    assert!(recorded);
    let out = write(store, std::slice::from_ref(&row), at(3)).await;
    assert_eq!(
        out[0].conflicts,
        vec![ConsentScope::Sms],
        "the conflict is reported"
    );
    assert_eq!(out[0].change, RowChange::Unchanged);
    let c = store.client(&id("9")).await.unwrap().unwrap();
    let sms = c.consent(ConsentScope::Sms);
    assert!(!sms.granted, "the opt-out stays");
    assert_eq!((sms.source, sms.at), (ConsentSource::SmsReply, at(2)));
    assert!(c.consent(ConsentScope::Email).granted);

    // A profile change in the same row is still applied, the opt-out kept.
    let changed = record(&[
        ("id", "9"),
        ("name", "丁二"),
        ("consent_sms", "true"),
        ("consent_email", "true"),
    ]);
    let out = write(store, &[changed], at(4)).await;
    assert_eq!(out[0].change, RowChange::Updated);
    let c = store.client(&id("9")).await.unwrap().unwrap();
    assert_eq!(c.client.name, "丁二");
    assert_eq!(c.consent(ConsentScope::Sms).source, ConsentSource::SmsReply);
}

async fn an_opt_out_the_crm_sent_can_be_lifted_by_the_crm(store: &dyn Store) {
    write(
        store,
        &[record(&[
            ("id", "5"),
            ("name", "戊"),
            ("consent_email", "false"),
        ])],
        at(1),
    )
    .await;
    let out = write(
        store,
        &[record(&[
            ("id", "5"),
            ("name", "戊"),
            ("consent_email", "true"),
        ])],
        at(2),
    )
    .await;
    assert!(out[0].conflicts.is_empty());
    assert!(
        store
            .client(&id("5"))
            .await
            .unwrap()
            .unwrap()
            .consent(ConsentScope::Email)
            .granted
    );
    let email: Vec<(bool, DateTime<Utc>)> = store
        .consent_history(&id("5"))
        .await
        .unwrap()
        .into_iter()
        .filter(|h| h.scope == ConsentScope::Email)
        .map(|h| (h.granted, h.at))
        .collect();
    assert_eq!(
        email,
        vec![(false, at(1)), (true, at(2))],
        "the first state is kept in the history"
    );
}

async fn consent_history_lists_every_change_in_order(store: &dyn Store) {
    write(
        store,
        &[record(&[
            ("id", "6"),
            ("name", "己"),
            ("consent_sms", "true"),
        ])],
        at(1),
    )
    .await;
    store
        .record_consent(&opt_out(
            "6",
            ConsentScope::Sms,
            ConsentSource::UnsubscribeLink,
            at(2),
        ))
        .await
        .unwrap();
    let mut restore = opt_out("6", ConsentScope::Sms, ConsentSource::Operator, at(3));
    restore.granted = true;
    restore.actor = Some("compliance.wang".into());
    store.record_consent(&restore).await.unwrap();
    let sms: Vec<(bool, ConsentSource, Option<String>)> = store
        .consent_history(&id("6"))
        .await
        .unwrap()
        .into_iter()
        .filter(|h| h.scope == ConsentScope::Sms)
        .map(|h| (h.granted, h.source, h.actor))
        .collect();
    assert_eq!(
        sms,
        vec![
            (true, ConsentSource::Import, None),
            (false, ConsentSource::UnsubscribeLink, None),
            (
                true,
                ConsentSource::Operator,
                Some("compliance.wang".into())
            ),
        ]
    );
    assert!(!store
        .record_consent(&opt_out(
            "nobody",
            ConsentScope::Sms,
            ConsentSource::SmsReply,
            at(2)
        ))
        .await
        .unwrap());
}

async fn an_atomic_writer_dropped_without_commit_writes_nothing(store: &dyn Store) {
    let mut w = store.client_writer(true).await.unwrap();
    w.write(&[record(&[("id", "1"), ("name", "甲")])], at(1))
        .await
        .unwrap();
    w.write(&[record(&[("id", "2"), ("name", "乙")])], at(1))
        .await
        .unwrap();
    drop(w);
    assert_eq!(store.count_clients().await.unwrap(), 0);
    assert!(store.consent_history(&id("1")).await.unwrap().is_empty());
}

fn event(client: &str, when: DateTime<Utc>, kind: EventKind) -> NewEvent {
    NewEvent {
        client_id: id(client),
        at: when,
        kind,
        channel: Some(Channel::Email),
        campaign: Some("daily-bulletin".into()),
        campaign_kind: Some("market_bulletin".into()),
        purpose: None,
        run_id: None,
        delivery_id: None,
        source: "import".into(),
        details: json!({"url": "https://research.example.com/a"}),
        dedupe_on: None,
    }
}

async fn events_are_stored_once_and_only_for_known_clients(store: &dyn Store) {
    write(store, &[record(&[("id", "1"), ("name", "甲")])], at(1)).await;
    let sent = event("1", at(3), EventKind::Sent);
    let opened = event("1", at(3) + Duration::minutes(5), EventKind::Opened);
    let stranger = event("404", at(3), EventKind::Opened);
    let out = store
        .insert_events(&[sent.clone(), opened.clone(), sent.clone(), stranger])
        .await
        .unwrap();
    use EventOutcome::*;
    assert_eq!(out, vec![Stored, Stored, Duplicate, UnknownClient]);
    let again = store
        .insert_events(std::slice::from_ref(&opened))
        .await
        .unwrap();
    assert_eq!(
        again,
        vec![Duplicate],
        "importing the same history twice stores it once"
    );

    let timeline = store.client_events(&id("1"), 10).await.unwrap();
    let kinds: Vec<EventKind> = timeline.iter().map(|e| e.event.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::Opened, EventKind::Sent],
        "newest first"
    );
    assert_eq!(timeline[0].event, opened, "an event round-trips exactly");
    assert_eq!(store.client_events(&id("1"), 1).await.unwrap().len(), 1);
}

async fn one_instance_holds_the_scheduler_lease_until_it_lapses(store: &dyn Store) {
    let (t0, ttl) = (at(1), Duration::seconds(15));
    assert!(store
        .take_lease("scheduler", "a", t0, t0 + ttl)
        .await
        .unwrap());
    assert!(
        !store
            .take_lease("scheduler", "b", t0, t0 + ttl)
            .await
            .unwrap(),
        "held by a"
    );
    let later = t0 + Duration::seconds(10);
    assert!(
        store
            .take_lease("scheduler", "a", later, later + ttl)
            .await
            .unwrap(),
        "a renews"
    );
    let lapsed = later + ttl + Duration::seconds(1);
    assert!(!store
        .take_lease("scheduler", "b", later, later + ttl)
        .await
        .unwrap());
    assert_eq!(
        store
            .lease_holder("scheduler", later)
            .await
            .unwrap()
            .as_deref(),
        Some("a")
    );
    assert!(
        store
            .take_lease("scheduler", "b", lapsed, lapsed + ttl)
            .await
            .unwrap(),
        "a went silent"
    );
    store.release_lease("scheduler", "a").await.unwrap();
    assert_eq!(
        store
            .lease_holder("scheduler", lapsed)
            .await
            .unwrap()
            .as_deref(),
        Some("b"),
        "only the owner releases"
    );
    store.release_lease("scheduler", "b").await.unwrap();
    assert_eq!(store.lease_holder("scheduler", lapsed).await.unwrap(), None);
}

async fn a_second_quota_is_shared_and_never_exceeded(store: &dyn Store) {
    assert_eq!(store.take_quota("smtp", 100, 40, 100).await.unwrap(), 40);
    assert_eq!(store.take_quota("smtp", 100, 40, 100).await.unwrap(), 40);
    assert_eq!(
        store.take_quota("smtp", 100, 40, 100).await.unwrap(),
        20,
        "what is left"
    );
    assert_eq!(store.take_quota("smtp", 100, 40, 100).await.unwrap(), 0);
    assert_eq!(
        store.take_quota("sms", 100, 40, 100).await.unwrap(),
        40,
        "per provider"
    );
    assert_eq!(
        store.take_quota("smtp", 101, 40, 100).await.unwrap(),
        40,
        "per second"
    );
    // Many takers at once: the grants add up to the limit exactly.
    let grants =
        futures::future::join_all((0..16).map(|_| store.take_quota("smtp", 200, 10, 75))).await;
    let total: u32 = grants.into_iter().map(|g| g.unwrap()).sum();
    assert_eq!(total, 75);
}

async fn instances_report_themselves(store: &dyn Store) {
    let mut me = herald::store::fleet::Instance {
        id: "box-1:42".into(),
        host: "box-1".into(),
        pid: 42,
        roles: "scheduler,dispatcher".into(),
        started_at: at(1),
        seen_at: at(1),
        sent: 0,
    };
    store.heartbeat(&me).await.unwrap();
    me.seen_at = at(1) + Duration::seconds(5);
    me.sent = 12;
    store.heartbeat(&me).await.unwrap();
    assert_eq!(store.instances().await.unwrap(), vec![me.clone()]);
    let old = herald::store::fleet::Instance {
        id: "box-2:7".into(),
        seen_at: at(1),
        ..me.clone()
    };
    store.heartbeat(&old).await.unwrap();
    me.seen_at = at(3);
    store.heartbeat(&me).await.unwrap();
    assert_eq!(
        store.instances().await.unwrap(),
        vec![me],
        "silent for a day: forgotten"
    );
}

async fn webhook_cursors_start_at_now_and_only_move_forward(store: &dyn Store) {
    write(store, &[record(&[("id", "1"), ("name", "甲")])], at(1)).await;
    assert_eq!(
        store.webhook_cursor("early").await.unwrap(),
        0,
        "no events yet"
    );
    store
        .insert_events(&[
            event("1", at(2), EventKind::Opened),
            event("1", at(3), EventKind::Clicked),
        ])
        .await
        .unwrap();
    let later = store.webhook_cursor("late").await.unwrap();
    let all = store.events_after(0, Utc::now(), 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(later, all[1].id, "a new webhook starts at the newest event");
    assert_eq!(
        store.webhook_cursor("early").await.unwrap(),
        0,
        "an existing cursor stays"
    );
    store.set_webhook_cursor("early", all[0].id).await.unwrap();
    store.set_webhook_cursor("early", 0).await.unwrap();
    assert_eq!(
        store.webhook_cursor("early").await.unwrap(),
        all[0].id,
        "never backwards"
    );
    let next = store.events_after(all[0].id, Utc::now(), 10).await.unwrap();
    assert_eq!(
        next.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![all[1].id]
    );
    assert!(
        store.events_after(0, at(1), 10).await.unwrap().is_empty(),
        "recorded later than asked"
    );
}

async fn many_accepting_at_once_never_overfill_the_room(store: &dyn Store) {
    use herald::store::seminars::Standing;
    const CAPACITY: i64 = 10;
    const ANSWERS: usize = 40;
    store.set_capacity("strategy", CAPACITY).await.unwrap();
    let clients: Vec<String> = (0..ANSWERS).map(|i| format!("c{i:02}")).collect();
    let standings = futures::future::join_all(
        clients
            .iter()
            .map(|c| store.accept("strategy", c, at(1), None)),
    )
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .unwrap();
    let seated = standings
        .iter()
        .filter(|s| matches!(s, Standing::Seated { .. }))
        .count();
    assert_eq!(seated, CAPACITY as usize, "{standings:?}");
    let mut places: Vec<i64> = standings
        .iter()
        .map(|s| match s {
            Standing::Seated { position } => *position,
            Standing::Waitlisted { place } => CAPACITY + place,
            Standing::Declined => panic!("nobody declined"),
        })
        .collect();
    places.sort();
    assert_eq!(
        places,
        (1..=ANSWERS as i64).collect::<Vec<_>>(),
        "positions are gapless and unique"
    );
    let attendance = store.attendance("strategy").await.unwrap();
    assert_eq!(
        (attendance.seated, attendance.waitlisted),
        (CAPACITY, ANSWERS as i64 - CAPACITY)
    );

    // Accepting again keeps the place; declines free seats for the first waiting.
    let first_waiting = clients
        .iter()
        .zip(&standings)
        .find(|(_, s)| **s == Standing::Waitlisted { place: 1 })
        .map(|(c, _)| c.clone())
        .unwrap();
    let a_seat = clients
        .iter()
        .zip(&standings)
        .find(|(_, s)| matches!(s, Standing::Seated { .. }))
        .map(|(c, _)| c.clone())
        .unwrap();
    assert_eq!(
        store
            .accept("strategy", &a_seat, at(2), None)
            .await
            .unwrap(),
        store.standing("strategy", &a_seat).await.unwrap().unwrap()
    );
    let declined = store.decline("strategy", &a_seat, at(2)).await.unwrap();
    assert_eq!(declined.promoted.as_deref(), Some(first_waiting.as_str()));
    assert!(matches!(
        store.standing("strategy", &first_waiting).await.unwrap(),
        Some(Standing::Seated { .. })
    ));
    assert_eq!(
        store.standing("strategy", &a_seat).await.unwrap(),
        Some(Standing::Declined)
    );
    // A waiting client who declines promotes nobody; the room stays full.
    let last = clients
        .iter()
        .zip(&standings)
        .find(|(_, s)| {
            **s == Standing::Waitlisted {
                place: ANSWERS as i64 - CAPACITY,
            }
        })
        .map(|(c, _)| c.clone())
        .unwrap();
    assert_eq!(
        store
            .decline("strategy", &last, at(3))
            .await
            .unwrap()
            .promoted,
        None
    );
    let attendance = store.attendance("strategy").await.unwrap();
    assert_eq!(
        (attendance.seated, attendance.waitlisted),
        (CAPACITY, ANSWERS as i64 - CAPACITY - 2)
    );
    // Concurrent declines and acceptances keep the positions gapless.
    let late: Vec<String> = (0..10).map(|i| format!("late{i}")).collect();
    let seated_now: Vec<String> = clients
        .iter()
        .filter(|c| **c != a_seat && **c != last)
        .take(5)
        .cloned()
        .collect();
    let accepts = futures::future::join_all(
        late.iter()
            .map(|c| store.accept("strategy", c, at(4), None)),
    );
    let declines = futures::future::join_all(
        seated_now
            .iter()
            .map(|c| store.decline("strategy", c, at(4))),
    );
    let (a, d) = futures::join!(accepts, declines);
    assert!(a.iter().all(Result::is_ok) && d.iter().all(Result::is_ok));
    let attendance = store.attendance("strategy").await.unwrap();
    let accepted = ANSWERS as i64 - 2 - 5 + 10;
    assert_eq!(
        (attendance.seated, attendance.waitlisted),
        (CAPACITY, accepted - CAPACITY)
    );
    let mut positions = Vec::new();
    for c in clients.iter().chain(&late) {
        match store.standing("strategy", c).await.unwrap() {
            Some(Standing::Seated { position }) => positions.push(position),
            Some(Standing::Waitlisted { place }) => positions.push(CAPACITY + place),
            _ => {}
        }
    }
    positions.sort();
    assert_eq!(positions, (1..=accepted).collect::<Vec<_>>());
}

/// A sending run of four deliveries, claimed by "me" until five minutes
/// from now.
async fn claimed_run(
    store: &dyn Store,
    campaign: &str,
) -> (herald::store::runs::Run, Vec<herald::store::runs::Claimed>) {
    let now = Utc::now();
    let run = sending_run(store, campaign).await;
    let claimed = store
        .claim("me", now, now + Duration::minutes(5), 10, Some(run.id))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 4);
    (run, claimed)
}

/// A claim for one run takes that run's queue only, however long another
/// run's is; a claim for every run takes the oldest deliveries first.
async fn a_claim_takes_its_runs_queue_or_every_runs(store: &dyn Store) {
    let first = sending_run(store, "first").await;
    let second = sending_run(store, "second").await;
    let (now, lease) = (Utc::now(), Utc::now() + Duration::minutes(5));
    let runs_of = |claimed: Vec<herald::store::runs::Claimed>| {
        claimed.iter().map(|c| c.run_id).collect::<Vec<_>>()
    };
    let theirs = store
        .claim("me", now, lease, 3, Some(second.id))
        .await
        .unwrap();
    assert_eq!(runs_of(theirs), [second.id; 3]);
    let any = store.claim("me", now, lease, 10, None).await.unwrap();
    assert_eq!(
        runs_of(any),
        [first.id, first.id, first.id, first.id, second.id]
    );
}

/// A sending run of four queued deliveries.
async fn sending_run(store: &dyn Store, campaign: &str) -> herald::store::runs::Run {
    use herald::campaign::file::Purpose;
    use herald::store::runs::{AuditEntry, NewDelivery, NewRun, Planned, RunState};
    let now = Utc::now();
    let run = NewRun {
        campaign: campaign.into(),
        run_key: "k".into(),
        kind: "market_bulletin".into(),
        purpose: Purpose::Marketing,
        state: RunState::Sending,
        launched_by: None,
        launched_at: now,
        content: "{}".into(),
        content_hash: "h".into(),
        files: "{}".into(),
        fingerprint: "f".into(),
        not_before: None,
        send_by: None,
        audience: 4,
        stop_reason: None,
    };
    let deliveries: Vec<NewDelivery> = (1..=4)
        .map(|i| NewDelivery {
            client_id: format!("c{i}"),
            channel: Channel::Email,
            address: format!("c{i}@example.com"),
            fallback: vec![],
            not_before: now - Duration::minutes(1),
            decision: "{}".into(),
        })
        .collect();
    let audit = AuditEntry {
        at: now,
        actor: "test".into(),
        action: "launch".into(),
        subject: campaign.into(),
        details: json!({}),
    };
    let Planned::New(run) = store
        .plan_run(&run, &deliveries, &[], &audit, true)
        .await
        .unwrap()
    else {
        panic!("a new run")
    };
    run
}

/// Two writers (two processes, or two instances) append to one archive in
/// turn: each one's idea of the chain's tail goes stale, and the chain
/// still comes out whole and in order. Records compressed against the
/// run's dictionary (saved by both, stored once) and without one read
/// back alike.
async fn two_writers_extend_one_archive_chain(store: &dyn Store, url: &str) {
    use herald::store::runs::{
        ArchiveDictionary, ArchiveEntry, DeliveryState, DeliveryUpdate, ARCHIVE_GENESIS,
    };
    let other = herald::store::open(&herald::store::DatabaseUrl::new(url))
        .await
        .unwrap();
    let now = Utc::now();
    let (run, claimed) = claimed_run(store, "chain").await;
    let dictionary = ArchiveDictionary::new("{\"n\":0,\"市场\":\"沪深\"}".as_bytes().to_vec());
    store.save_archive_dictionary(&dictionary).await.unwrap();
    other.save_archive_dictionary(&dictionary).await.unwrap();
    let record = |i: usize| format!("{{\"n\":{i},\"市场\":\"沪深\"}}");
    let sent = |i: usize| {
        let c = &claimed[i];
        let mut u = DeliveryUpdate::new(c.id, DeliveryState::Sent);
        u.archive = Some(ArchiveEntry::new(
            c.id,
            run.id,
            c.client_id.clone(),
            now,
            record(i),
            i.is_multiple_of(2).then_some(&dictionary),
        ));
        u
    };
    let ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
    assert_eq!(
        store
            .mark_sending("me", &ids, now + Duration::minutes(5))
            .await
            .unwrap()
            .len(),
        4
    );
    // Two stores record in turn, as two dispatchers of a fleet do.
    store.record_deliveries(&[sent(0)]).await.unwrap();
    other.record_deliveries(&[sent(1)]).await.unwrap();
    store.record_deliveries(&[sent(2)]).await.unwrap();
    other.record_deliveries(&[sent(3)]).await.unwrap();
    let chain = store.archive_page(0, 100).await.unwrap();
    let mut prev = ARCHIVE_GENESIS.to_owned();
    for (i, (r, c)) in chain.iter().zip(&claimed).enumerate() {
        assert_eq!((r.seq, r.delivery_id), (i as i64 + 1, c.id));
        assert_eq!(r.record, record(i));
        assert_eq!(r.prev_hash, prev);
        assert!(r.follows(&prev), "record {} follows the one before", r.seq);
        prev = r.hash.clone();
    }
    assert_eq!(chain.len(), 4);
}

/// A dispatcher killed mid-chunk: its journal says one send finished
/// (its outcome not yet recorded), one started, two never did. Settling
/// records the first, leaves the second uncertain and gives the rest back,
/// even after another dispatcher found the lease lapsed first; settling
/// again changes nothing.
async fn a_dead_senders_journal_settles_what_it_held(store: &dyn Store) {
    use herald::store::runs::{
        ArchiveDictionary, ArchiveEntry, DeliveryState, DeliveryUpdate, JournalReplay, Settled,
    };
    let now = Utc::now();
    let (run, claimed) = claimed_run(store, "journal").await;
    let ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
    let marked = store
        .mark_sending("me", &ids, now - Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(marked.len(), 4);
    assert_eq!(
        store.reclaim_lapsed(Utc::now(), false).await.unwrap(),
        (0, 4),
        "the lapsed sends are uncertain until the journal says otherwise"
    );
    let mut sent = DeliveryUpdate::new(ids[0], DeliveryState::Sent);
    sent.sent_at = Some(now);
    let dictionary = ArchiveDictionary::new(b"{\"sample\":true}".to_vec());
    store.save_archive_dictionary(&dictionary).await.unwrap();
    sent.archive = Some(ArchiveEntry::new(
        ids[0],
        run.id,
        claimed[0].client_id.clone(),
        now,
        "{\"sample\":false}",
        Some(&dictionary),
    ));
    let replay = JournalReplay {
        done: vec![sent],
        started: [ids[0], ids[1]].into(),
    };
    let settled = store.settle_journal("me", &replay).await.unwrap();
    assert_eq!(
        settled,
        Settled {
            recorded: 1,
            uncertain: 1,
            requeued: 2
        }
    );
    assert_eq!(
        store.settle_journal("me", &replay).await.unwrap(),
        Settled::default()
    );
    let counts = store.run_counts(run.id).await.unwrap();
    let state = |s| counts.state(s);
    assert_eq!(
        (
            state(DeliveryState::Sent),
            state(DeliveryState::Uncertain),
            state(DeliveryState::Queued)
        ),
        (1, 1, 2)
    );
    assert_eq!(store.archive_page(0, 10).await.unwrap().len(), 1);
    let archived = store.archive_get(ids[0]).await.unwrap().unwrap();
    assert_eq!(archived.record, "{\"sample\":false}");
    // What never left comes back with its attempt not counted.
    let again = store
        .claim(
            "other",
            Utc::now(),
            Utc::now() + Duration::minutes(5),
            10,
            Some(run.id),
        )
        .await
        .unwrap();
    let again: Vec<(i64, i32)> = again.iter().map(|c| (c.id, c.attempts)).collect();
    assert_eq!(again, [(ids[2], 0), (ids[3], 0)]);
}

/// What a process wrote to SQLite is in the database file when it closes
/// the store: the next process does not start by copying it.
#[tokio::test]
async fn closing_a_sqlite_store_leaves_its_wal_empty() {
    let t = common::sqlite().await;
    let db = t.url.expose().trim_start_matches("sqlite://").to_owned();
    let wal = std::path::PathBuf::from(format!("{db}-wal"));
    let rows: Vec<ClientRecord> = (0..200)
        .map(|i| record(&[("id", &i.to_string()), ("name", "张三")]))
        .collect();
    write(&*t.store, &rows, at(1)).await;
    let wal_len = || wal.metadata().map_or(0, |m| m.len());
    assert!(wal_len() > 0, "the writes went to the WAL first");
    t.store.close().await;
    assert_eq!(wal_len(), 0, "closing copied the WAL into the database");
    let again = herald::store::open(&t.url).await.unwrap();
    assert_eq!(again.count_clients().await.unwrap(), 200);
    again.close().await;
}

/// Whether the database refuses `sql` (run on a connection of its own) as
/// breaking a constraint: any other error fails the test.
async fn refused(url: &str, sql: &str) -> bool {
    let result = common::execute(url, sql).await;
    let Err(e) = result else { return false };
    let db = e
        .as_database_error()
        .unwrap_or_else(|| panic!("{sql}: {e}"));
    // PostgreSQL: SQLSTATE class 23; SQLite: a foreign key's extended code.
    let code = db.code().unwrap_or_default();
    assert!(
        code.starts_with("23") || code == "787",
        "{sql}: not a constraint: {e}"
    );
    true
}

/// Every delivery and suppression belongs to a run that exists, and stays
/// in it; its run is never deleted. PostgreSQL checks a statement's rows
/// at once (and keeps every run), SQLite each row with its foreign key.
async fn deliveries_and_suppressions_always_name_a_run(store: &dyn Store, url: &str) {
    let run = sending_run(store, "integrity").await;
    let (real, missing) = (run.id, run.id + 1000);
    let delivery = |rows: &[(i64, &str)]| {
        let values: Vec<String> = rows
            .iter()
            .map(|(run, client)| {
                format!("({run}, '{client}', 'email', 'x@example.com', 'queued', CURRENT_TIMESTAMP, '{{}}', CURRENT_TIMESTAMP)")
            })
            .collect();
        format!(
            "INSERT INTO deliveries (run_id, client_id, channel, address, state, not_before, decision, updated_at) VALUES {}",
            values.join(", ")
        )
    };
    let suppression = |rows: &[(i64, &str)]| {
        let values: Vec<String> = rows
            .iter()
            .map(|(run, client)| format!("({run}, '{client}', 'no_consent')"))
            .collect();
        format!(
            "INSERT INTO suppressions (run_id, client_id, reason) VALUES {}",
            values.join(", ")
        )
    };
    assert!(refused(url, &delivery(&[(missing, "x")])).await);
    assert!(refused(url, &suppression(&[(missing, "x")])).await);
    // One statement, one good row and one bad: nothing of it is kept.
    assert!(refused(url, &delivery(&[(real, "a"), (missing, "b")])).await);
    assert!(refused(url, &suppression(&[(real, "a"), (missing, "b")])).await);
    assert!(
        !refused(url, &delivery(&[(real, "x")])).await,
        "its run exists"
    );
    assert!(
        !refused(url, &suppression(&[(real, "y")])).await,
        "its run exists"
    );
    for table in ["deliveries", "suppressions"] {
        let moved = format!("UPDATE {table} SET run_id = {missing} WHERE run_id = {real}");
        assert!(refused(url, &moved).await, "{moved}");
    }
    assert!(refused(url, &format!("DELETE FROM runs WHERE id = {real}")).await);
    if url.starts_with("postgres") {
        assert!(refused(url, "TRUNCATE runs CASCADE").await);
    }
    let counts = store.run_counts(real).await.unwrap();
    assert_eq!(
        counts.deliveries.values().sum::<i64>(),
        5,
        "four planned, one added"
    );
    assert_eq!(counts.suppressions.values().sum::<i64>(), 1);
}

mod archive {
    use super::*;
    with_url!(two_writers_extend_one_archive_chain);
}

async fn a_batch_is_checked_against_its_own_do_not_contact_entries(store: &dyn Store) {
    use herald::store::runs::{DncEntry, DncKind};
    let listed = [
        (DncKind::Client, "c1"),
        (DncKind::Email, "a@example.com"),
        (DncKind::Phone, "13800000001"),
        // A value listed as another kind: the caller compares kinds.
        (DncKind::Email, "c2"),
    ];
    for (kind, value) in listed {
        let entry = DncEntry {
            kind,
            value: value.into(),
            reason: "本人要求".into(),
            added_by: "客服".into(),
            added_at: at(1),
        };
        assert!(store.dnc_add(&entry).await.unwrap());
    }
    // More values than one statement takes, the listed ones among them.
    let mut values: Vec<String> = (0..1200).map(|i| format!("other{i}@example.com")).collect();
    values.extend(["c2", "13800000001", "c1", "b@example.com"].map(String::from));
    let found = store.do_not_contact_among(&values).await.unwrap();
    let expected = [
        (DncKind::Client, "c1".to_string()),
        (DncKind::Phone, "13800000001".to_string()),
        (DncKind::Email, "c2".to_string()),
    ];
    assert_eq!(found, expected.into_iter().collect());
    assert!(store.do_not_contact_among(&[]).await.unwrap().is_empty());
}

mod integrity {
    use super::*;
    with_url!(deliveries_and_suppressions_always_name_a_run);
}

on_both_backends!(
    a_batch_is_checked_against_its_own_do_not_contact_entries,
    a_claim_takes_its_runs_queue_or_every_runs,
    a_dead_senders_journal_settles_what_it_held,
    many_accepting_at_once_never_overfill_the_room,
    webhook_cursors_start_at_now_and_only_move_forward,
    one_instance_holds_the_scheduler_lease_until_it_lapses,
    a_second_quota_is_shared_and_never_exceeded,
    instances_report_themselves,
    every_field_round_trips,
    a_new_client_gets_the_documented_consent_defaults,
    reimport_tells_unchanged_from_updated,
    an_opt_out_herald_recorded_survives_a_reimport,
    an_opt_out_the_crm_sent_can_be_lifted_by_the_crm,
    consent_history_lists_every_change_in_order,
    an_atomic_writer_dropped_without_commit_writes_nothing,
    events_are_stored_once_and_only_for_known_clients,
);
