//! Text output: the `ls` table, the `show` page and the `watch` line of kinds without a ring.

use comfy_table::{Table, presets::NOTHING};
use shmproc::inspect::{Details, KindState, LockReport, LockStatus, PermitReport, RingReport, SegmentReport, Status};
use std::fmt::Write;

/// `ls`: one row per segment.
pub(crate) fn table(reports: &[SegmentReport], now: i64) -> String {
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header(["NAME", "KIND", "TYPE", "STATE", "PARTICIPANTS", "SIZE", "AGE"]);
    for r in reports {
        let (kind, ty, state) = match &r.status {
            Status::Ready(d) => (kind_name(d), short_type(&d.type_name), state(d)),
            other => ("-".to_string(), "-".to_string(), status_word(other)),
        };
        let people = match &r.status {
            Status::Ready(_) => format!("{} live, {} dead", r.live_participants(), r.dead_participants()),
            _ => "-".into(),
        };
        t.add_row([
            r.name.clone(),
            kind,
            ty,
            state,
            people,
            bytes(r.size_bytes),
            age(now - r.changed_unix),
        ]);
    }
    if reports.is_empty() {
        return "no shmproc segments\n".into();
    }
    format!("{t}\n")
}

/// `show`: everything about one segment.
pub(crate) fn show(r: &SegmentReport, now: i64) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "name:          {} ({})", r.name, r.os_name);
    let _ = writeln!(
        s,
        "file:          {}, owner uid {}, mode {:o}, changed {} ago",
        bytes(r.size_bytes),
        r.owner_uid,
        r.mode,
        age(now - r.changed_unix)
    );
    let Status::Ready(d) = &r.status else {
        let _ = writeln!(s, "status:        {}", status_word(&r.status));
        if let Status::Damaged { what } | Status::Unreadable { what } = &r.status {
            let _ = writeln!(s, "               {what}");
        }
        return s;
    };
    let _ = writeln!(s, "kind:          {}", kind_name(d));
    let _ = writeln!(
        s,
        "type:          {} ({} bytes, align {}{})",
        d.type_name,
        d.elem_size,
        d.elem_align,
        if d.schema_id != 0 {
            format!(", schema {:#x}", d.schema_id)
        } else {
            String::new()
        }
    );
    let _ = writeln!(s, "count:         {}", d.count);
    let _ = writeln!(
        s,
        "layout:        version {}, created by pid {}",
        d.layout_version, d.creator_pid
    );
    let _ = writeln!(
        s,
        "removed with:  {}",
        if d.removed_with_last_user {
            "its last user"
        } else {
            "its creator's handle (unless persisted)"
        }
    );
    match &d.state {
        KindState::Value { lock }
        | KindState::Array { lock }
        | KindState::Lock { lock }
        | KindState::RLock { lock } => {
            let _ = writeln!(s, "lock:          {}", lock_text(lock));
        }
        KindState::Semaphore { permits } | KindState::BoundedSemaphore { permits } => {
            let _ = writeln!(
                s,
                "permits:       {} available of {} initial{}",
                permits.available,
                permits.initial,
                if matches!(d.state, KindState::BoundedSemaphore { .. }) {
                    " (its bound)"
                } else {
                    ""
                }
            );
            let _ = writeln!(
                s,
                "held:          {} through guards, {} of them by dead handles{}",
                permits.held,
                permits.held_by_dead,
                if permits.held_by_dead > 0 {
                    " (returned at the next wait)"
                } else {
                    ""
                }
            );
        }
        KindState::Event { set, waiters } => {
            let _ = writeln!(
                s,
                "event:         {}{}",
                if *set { "set" } else { "clear" },
                if *waiters { ", waiters since the last set" } else { "" }
            );
        }
        KindState::Condition { waiters } => {
            let _ = writeln!(s, "condition:     {waiters} waiter(s) counted");
        }
        KindState::Barrier {
            parties,
            arrived,
            generation,
            broken,
            dead_parties,
        } => {
            let _ = writeln!(
                s,
                "barrier:       {arrived}/{parties} arrived, generation {generation}{}",
                if *broken { ", BROKEN (until reset)" } else { "" }
            );
            if *dead_parties > 0 {
                let _ = writeln!(
                    s,
                    "               {dead_parties} dead party handle(s) not arrived (the next wait breaks it)"
                );
            }
        }
        KindState::Queue { ring } | KindState::MessageQueue { ring } => ring_lines(&mut s, "queue", ring),
        KindState::Pipe { one_way, ends, rings } => {
            let _ = writeln!(
                s,
                "pipe:          {}",
                if *one_way { "one-way (end 1 sends)" } else { "duplex" }
            );
            for (i, e) in ends.iter().enumerate() {
                let who = match (e.connected, e.dropped, e.pid) {
                    (false, _, _) => "not connected".to_string(),
                    (true, true, _) => "dropped".to_string(),
                    (true, false, Some(pid)) => format!("pid {pid}, {}", if e.alive { "alive" } else { "dead" }),
                    (true, false, None) => "connected, holder gone".to_string(),
                };
                let _ = writeln!(s, "end {i}:         {who}");
            }
            ring_lines(&mut s, "0 -> 1", &rings[0]);
            ring_lines(&mut s, "1 -> 0", &rings[1]);
        }
        KindState::AtomicArray { len } => {
            let _ = writeln!(s, "atomics:       {len} elements, no lock");
        }
        KindState::Bytes { size } => {
            let _ = writeln!(s, "bytes:         {}, no lock", bytes(*size));
        }
        _ => {
            let _ = writeln!(s, "state:         (a kind this tool does not know yet; see --json)");
        }
    }
    let _ = writeln!(
        s,
        "participants:  {} of {} slots",
        d.participants.len(),
        d.participant_slots
    );
    for p in &d.participants {
        let mut extra = String::new();
        if p.holds_lock {
            extra.push_str(", holds the lock");
        }
        if let Some(n) = p.in_hand {
            match d.state {
                KindState::Semaphore { .. } | KindState::BoundedSemaphore { .. } => {
                    let _ = write!(extra, ", {n} permit(s) held");
                }
                _ => {
                    let _ = write!(extra, ", {n} in hand");
                }
            }
        }
        let _ = writeln!(
            s,
            "  #{:<3} pid {:<8} {}{}",
            p.index,
            p.pid,
            if p.alive { "alive" } else { "DEAD" },
            extra
        );
    }
    s
}

fn ring_lines(s: &mut String, what: &str, ring: &RingReport) {
    let _ = writeln!(
        s,
        "{:<15}{}/{} items, {} being written, {} abandoned, {} in hand{}",
        format!("{what}:"),
        ring.items,
        ring.capacity,
        ring.writing,
        ring.abandoned,
        ring.in_hand,
        if ring.closed { ", closed" } else { "" }
    );
    if ring.taken_by_dead > 0 {
        let _ = writeln!(
            s,
            "               {} slot(s) held by consumers that died mid-get (freed a lap later)",
            ring.taken_by_dead
        );
    }
    let _ = writeln!(s, "               head {}, tail {}", ring.head, ring.tail);
}

pub(crate) fn kind_name(d: &Details) -> String {
    match &d.state {
        KindState::Value { .. } => "value",
        KindState::Array { .. } => "array",
        KindState::Queue { .. } => "queue",
        KindState::MessageQueue { .. } => "messages",
        KindState::Pipe { .. } => "pipe",
        KindState::Lock { .. } => "lock",
        KindState::AtomicArray { .. } => "atomics",
        KindState::Bytes { .. } => "bytes",
        KindState::Semaphore { .. } => "semaphore",
        KindState::BoundedSemaphore { .. } => "bounded-semaphore",
        KindState::Event { .. } => "event",
        KindState::Condition { .. } => "condition",
        KindState::Barrier { .. } => "barrier",
        KindState::RLock { .. } => "rlock",
        _ => "other",
    }
    .into()
}

/// The last path segment of each part of a type name (`alloc::string::String` -> `String`).
fn short_type(name: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            out.push_str(word.rsplit("::").next().unwrap_or(&word));
            word.clear();
            out.push(c);
        }
    }
    out.push_str(word.rsplit("::").next().unwrap_or(&word));
    out
}

/// The state column of `ls` (and the `watch` line of kinds without a ring).
pub(crate) fn state(d: &Details) -> String {
    match &d.state {
        KindState::Value { lock }
        | KindState::Array { lock }
        | KindState::Lock { lock }
        | KindState::RLock { lock } => lock_text(lock),
        KindState::Semaphore { permits } | KindState::BoundedSemaphore { permits } => permits_text(permits),
        KindState::Event { set, .. } => if *set { "set" } else { "clear" }.into(),
        KindState::Condition { waiters } => format!("{waiters} waiting"),
        KindState::Barrier {
            parties,
            arrived,
            broken,
            dead_parties,
            ..
        } => {
            let mut s = format!("{arrived}/{parties} arrived");
            if *broken {
                s.push_str(", BROKEN");
            }
            if *dead_parties > 0 {
                let _ = write!(s, ", {dead_parties} dead");
            }
            s
        }
        KindState::Queue { ring } | KindState::MessageQueue { ring } => fill(ring),
        KindState::Pipe { rings, .. } => format!("{} | {}", fill(&rings[0]), fill(&rings[1])),
        KindState::AtomicArray { len } => format!("{len} elements"),
        KindState::Bytes { size } => bytes(*size),
        _ => "-".into(),
    }
}

fn permits_text(p: &PermitReport) -> String {
    let mut s = format!("{}/{} available", p.available, p.initial);
    if p.held > 0 {
        let _ = write!(s, ", {} held", p.held);
    }
    if p.held_by_dead > 0 {
        let _ = write!(s, ", {} by dead", p.held_by_dead);
    }
    s
}

fn fill(ring: &RingReport) -> String {
    let mut s = format!("{}/{}", ring.items, ring.capacity);
    if ring.abandoned > 0 {
        let _ = write!(s, ", {} abandoned", ring.abandoned);
    }
    if ring.taken_by_dead > 0 {
        let _ = write!(s, ", {} held by dead", ring.taken_by_dead);
    }
    if ring.closed {
        s.push_str(", closed");
    }
    s
}

fn lock_text(lock: &LockReport) -> String {
    let mut s = match &lock.state {
        LockStatus::Free => "free".to_string(),
        LockStatus::Unrecoverable => "unrecoverable".to_string(),
        LockStatus::Held {
            index,
            pid,
            alive,
            owner_died,
        } => {
            let who = pid.map_or(format!("participant #{index}"), |p| format!("pid {p}"));
            let mut s = if *alive {
                format!("held by {who}")
            } else {
                format!("held by DEAD {who}")
            };
            if *owner_died {
                s.push_str(" (taken over from a dead owner, not yet consistent)");
            }
            s
        }
    };
    if lock.waiters {
        s.push_str(", waiters");
    }
    s
}

fn status_word(status: &Status) -> String {
    match status {
        Status::Ready(_) => "ready",
        Status::Initializing => "initializing",
        Status::Abandoned => "abandoned (creator died initializing it)",
        Status::OtherVersion { .. } => "other layout version",
        Status::Foreign => "not a shmproc segment",
        Status::Damaged { .. } => "DAMAGED",
        Status::Unreadable { .. } => "unreadable",
    }
    .to_string()
        + &match status {
            Status::OtherVersion { version } => format!(" {version}"),
            _ => String::new(),
        }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// A rate with a metric prefix (`12.3k`).
pub(crate) fn rate(r: f64) -> String {
    match r {
        r if r >= 1e9 => format!("{:.1}G", r / 1e9),
        r if r >= 1e6 => format!("{:.1}M", r / 1e6),
        r if r >= 1e3 => format!("{:.1}k", r / 1e3),
        r => format!("{r:.0}"),
    }
}
