//! The bridge between real processes and a real `nats-server` (skipped, saying so, when
//! none is on the path): producers → local queue → exporter → JetStream → importers → local
//! queues of two "hosts" (separate queue names), each item once; a foreign stream refused; a
//! full local queue stopping the fetches; a SIGKILLed importer and exporter, with their
//! loss and duplicate accounting; a server restarted between and during the transfers (the
//! bridge goes on by itself).

mod common;

use common::{Name, NatsServer, runtime};
use shmproc::{ByteQueue, RecvError};
use shmproc_bridge::{BridgeError, Exporter, Importer, StreamSpec};
use shmproc_testkit::{Child, Spawn, child_main, say};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

#[test]
fn child_entry() {
    child_main(|role, args| match role {
        // produce [queue] [tag] [n]: puts "tag-0".."tag-(n-1)".
        "produce" => {
            let q = ByteQueue::open(&args[0]).unwrap();
            let n: u32 = args[2].parse().unwrap();
            for i in 0..n {
                q.put(format!("{}-{i}", args[1]).as_bytes()).unwrap();
            }
            say("PRODUCED");
        }
        // export [url] [stream] [queue] [in flight]: exports until the queue is closed.
        "export" => {
            let q = ByteQueue::open(&args[2]).unwrap();
            let report = runtime().block_on(async {
                let client = async_nats::connect(args[0].as_str()).await.unwrap();
                Exporter::new(client, StreamSpec::new(args[1].as_str()))
                    .in_flight(args[3].parse().unwrap())
                    .run(&q)
                    .await
                    .unwrap()
            });
            say(format!("EXPORTED {}", report.exported));
        }
        // import [url] [stream] [durable] [queue] [ack wait ms]: imports until the end.
        "import" => {
            let q = ByteQueue::open(&args[3]).unwrap();
            let report = runtime().block_on(async {
                let client = async_nats::connect(args[0].as_str()).await.unwrap();
                Importer::new(client, StreamSpec::new(args[1].as_str()))
                    .durable(args[2].as_str())
                    .ack_wait(Duration::from_millis(args[4].parse().unwrap()))
                    .run(&q)
                    .await
                    .unwrap()
            });
            say(format!("IMPORTED {} {}", report.imported, report.redelivered));
        }
        other => panic!("unknown role {other}"),
    });
}

fn spawn(role: &str, args: &[&str]) -> Child {
    Spawn::new(role).args(args).libtest_entry("child_entry").spawn()
}

/// Takes items from `queues` until every one is closed and drained: how often each came.
fn drain(queues: &[&ByteQueue]) -> BTreeMap<String, u32> {
    let deadline = Instant::now() + T;
    let mut seen = BTreeMap::new();
    let mut open: Vec<&ByteQueue> = queues.to_vec();
    while !open.is_empty() {
        assert!(
            Instant::now() < deadline,
            "queues not closed: {} items so far",
            seen.len()
        );
        open.retain(|q| match q.get_timeout(Duration::from_millis(5)) {
            Ok(item) => {
                *seen.entry(String::from_utf8(item).unwrap()).or_insert(0) += 1;
                true
            }
            Err(RecvError::Timeout) => true,
            Err(RecvError::Closed) => false,
            Err(e) => panic!("{e}"),
        });
    }
    seen
}

fn expected(tags: &[&str], n: u32) -> Vec<String> {
    tags.iter()
        .flat_map(|t| (0..n).map(move |i| format!("{t}-{i}")))
        .collect()
}

#[test]
fn items_of_two_producers_reach_two_importing_hosts_once_each() {
    let Some(server) = NatsServer::start() else { return };
    let (src, host_a, host_b) = (Name::new("src"), Name::new("ha"), Name::new("hb"));
    let source = ByteQueue::create(&src, 64).unwrap();
    // Small queues on the importing side: the importers wait for room (back-pressure).
    let a = ByteQueue::create(&host_a, 16).unwrap();
    let b = ByteQueue::create(&host_b, 16).unwrap();
    let url = server.url();
    let mut exporter = spawn("export", &[&url, "TWO", &src, "16"]);
    let mut importers = [
        spawn("import", &[&url, "TWO", "workers", &host_a, "30000"]),
        spawn("import", &[&url, "TWO", "workers", &host_b, "30000"]),
    ];
    let mut producers = [
        spawn("produce", &[&src, "p", "300"]),
        spawn("produce", &[&src, "q", "300"]),
    ];
    let closer = std::thread::spawn(move || {
        for p in &mut producers {
            p.expect_line("PRODUCED", T);
        }
        source.close();
        source
    });
    let seen = drain(&[&a, &b]);
    let source = closer.join().unwrap();
    assert_eq!(exporter.expect_line("EXPORTED", T), "600");
    let imported: u64 = importers
        .iter_mut()
        .map(|i| {
            i.expect_line("IMPORTED", T)
                .split(' ')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(imported, 600);
    let want = expected(&["p", "q"], 300);
    assert_eq!(seen.len(), want.len(), "every item arrived");
    assert!(want.iter().all(|w| seen.get(w) == Some(&1)), "each exactly once");
    // The exporter marked each item done once the server had it: a local join returns.
    source.join_timeout(T).unwrap();
}

#[test]
fn a_stream_with_other_settings_is_refused() {
    let Some(server) = NatsServer::start() else { return };
    let (src, dst) = (Name::new("fs"), Name::new("fd"));
    let q = ByteQueue::create(&src, 4).unwrap();
    let d = ByteQueue::create(&dst, 4).unwrap();
    runtime().block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        let js = async_nats::jetstream::new(client.clone());
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "FOREIGN".into(),
            subjects: vec!["FOREIGN.items".into(), "FOREIGN.end".into()],
            ..Default::default()
        })
        .await
        .unwrap();
        for result in [
            Exporter::new(client.clone(), StreamSpec::new("FOREIGN"))
                .run(&q)
                .await
                .map(drop),
            Importer::new(client.clone(), StreamSpec::new("FOREIGN"))
                .run(&d)
                .await
                .map(drop),
        ] {
            match result {
                Err(BridgeError::ForeignStream { stream, differences }) => {
                    assert_eq!(stream, "FOREIGN");
                    assert!(
                        differences.iter().any(|d| d.starts_with("retention")),
                        "{differences:?}"
                    );
                }
                other => panic!("not refused: {other:?}"),
            }
        }
        // Same name, other limits: refused too.
        let spec = StreamSpec::new("MINE").max_messages(10);
        let bigger = StreamSpec::new("MINE").max_messages(20);
        q.close();
        Exporter::new(client.clone(), spec).run(&q).await.unwrap();
        let err = Exporter::new(client, bigger).run(&q).await.unwrap_err();
        assert!(err.to_string().contains("max_messages: want 20, found 10"), "{err}");
    });
}

#[test]
fn a_full_local_queue_stops_the_fetching() {
    let Some(server) = NatsServer::start() else { return };
    let (src, dst) = (Name::new("bs"), Name::new("bd"));
    let source = ByteQueue::create(&src, 256).unwrap();
    let local = ByteQueue::create(&dst, 4).unwrap();
    for i in 0..100 {
        source.put(format!("x-{i}").as_bytes()).unwrap();
    }
    source.close();
    let rt = runtime();
    let spec = StreamSpec::new("FULL");
    rt.block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        let r = Exporter::new(client.clone(), spec.clone()).run(&source).await.unwrap();
        assert_eq!(r.exported, 100);
        let importer = Importer::new(client.clone(), spec.clone()).batch(8);
        let import = importer.run(&local);
        let watch = async {
            // Nobody takes from the local queue: it fills, and the rest stay in the stream.
            let deadline = Instant::now() + T;
            while local.len() < 4 {
                assert!(Instant::now() < deadline);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let js = async_nats::jetstream::new(client.clone());
            let mut s = js.get_stream("FULL").await.unwrap();
            let left = s.info().await.unwrap().state.messages;
            // 100 items and the end marker; gone are at most the 4 put and the one in hand.
            assert!(left >= 96, "only {left} left in the stream");
            assert_eq!(local.len(), 4);
        };
        tokio::pin!(import);
        tokio::select! {
            r = &mut import => panic!("import ended early: {r:?}"),
            () = watch => {}
        }
        // Take everything; the import ends with the end marker and closes the queue.
        let taker = async {
            let mut got = Vec::new();
            loop {
                match local.get_async().await {
                    Ok(item) => got.push(String::from_utf8(item).unwrap()),
                    Err(RecvError::Closed) => return got,
                    Err(e) => panic!("{e}"),
                }
            }
        };
        let (report, got) = tokio::join!(import, taker);
        assert_eq!(report.unwrap().imported, 100);
        assert_eq!(got, expected(&["x"], 100), "in order, each once");
    });
}

#[test]
fn a_killed_importer_loses_nothing_and_repeats_only_unacknowledged_items() {
    let Some(server) = NatsServer::start() else { return };
    let (src, dst) = (Name::new("ks"), Name::new("kd"));
    let source = ByteQueue::create(&src, 1024).unwrap();
    let local = ByteQueue::create(&dst, 1024).unwrap();
    for i in 0..500 {
        source.put(format!("k-{i}").as_bytes()).unwrap();
    }
    source.close();
    let url = server.url();
    let mut exporter = spawn("export", &[&url, "KILLI", &src, "32"]);
    assert_eq!(exporter.expect_line("EXPORTED", T), "500");
    let mut doomed = spawn("import", &[&url, "KILLI", "w", &dst, "1000"]);
    let deadline = Instant::now() + T;
    while local.len() < 100 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
    doomed.kill();
    let mut again = spawn("import", &[&url, "KILLI", "w", &dst, "1000"]);
    let seen = drain(&[&local]);
    let line = again.expect_line("IMPORTED", T);
    let redelivered: u32 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let want = expected(&["k"], 500);
    assert!(want.iter().all(|w| seen.contains_key(w)), "nothing lost");
    assert_eq!(seen.len(), 500);
    let twice: u32 = seen.values().map(|n| n - 1).sum();
    // Each repeat is an item the killed importer put and had not acknowledged, which the
    // server delivered again: never more than it had fetched (one batch).
    assert!(
        twice <= redelivered && twice <= 64,
        "{twice} twice, {redelivered} redelivered"
    );
}

#[test]
fn a_killed_exporter_loses_at_most_its_items_in_flight() {
    let Some(server) = NatsServer::start() else { return };
    let (src, dst) = (Name::new("es"), Name::new("ed"));
    let source = ByteQueue::create(&src, 4096).unwrap();
    let local = ByteQueue::create(&dst, 4096).unwrap();
    for i in 0..3000 {
        source.put(format!("e-{i}").as_bytes()).unwrap();
    }
    let url = server.url();
    let mut doomed = spawn("export", &[&url, "KILLE", &src, "8"]);
    let deadline = Instant::now() + T;
    while source.len() > 2500 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
    doomed.kill();
    source.close();
    let mut again = spawn("export", &[&url, "KILLE", &src, "8"]);
    again.expect_line("EXPORTED", T);
    let mut importer = spawn("import", &[&url, "KILLE", "w", &dst, "30000"]);
    let seen = drain(&[&local]);
    importer.expect_line("IMPORTED", T);
    assert!(seen.values().all(|n| *n == 1), "no item twice");
    let lost = 3000 - seen.len();
    assert!(lost <= 8, "{lost} lost, more than the 8 in flight");
}

#[test]
fn a_restarted_server_keeps_what_it_acknowledged() {
    let Some(mut server) = NatsServer::start() else { return };
    let (src, dst) = (Name::new("ss"), Name::new("sd"));
    let source = ByteQueue::create(&src, 512).unwrap();
    let local = ByteQueue::create(&dst, 512).unwrap();
    for i in 0..300 {
        source.put(format!("s-{i}").as_bytes()).unwrap();
    }
    source.close();
    let url = server.url();
    let mut exporter = spawn("export", &[&url, "RESTART", &src, "32"]);
    assert_eq!(exporter.expect_line("EXPORTED", T), "300");
    server.restart();
    let mut importer = spawn("import", &[&url, "RESTART", "w", &dst, "30000"]);
    let seen = drain(&[&local]);
    assert_eq!(importer.expect_line("IMPORTED", T), "300 0");
    assert_eq!(
        seen.keys().cloned().collect::<std::collections::BTreeSet<_>>(),
        expected(&["s"], 300).into_iter().collect()
    );
}

#[test]
fn two_exporters_of_typed_queues_end_one_import_and_wait_for_delivery() {
    let Some(server) = NatsServer::start() else { return };
    let (a, b, dst) = (Name::new("ta"), Name::new("tb"), Name::new("td"));
    let qa = shmproc::MessageQueue::<(char, u32)>::create(&a, 64).unwrap();
    let qb = shmproc::MessageQueue::<(char, u32)>::create(&b, 64).unwrap();
    let local = shmproc::MessageQueue::<(char, u32)>::create(&dst, 16).unwrap();
    let spec = StreamSpec::new("TWOEXP");
    runtime().block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        let ea = Exporter::new(client.clone(), spec.clone()).keep_earlier_ends();
        let eb = Exporter::new(client.clone(), spec.clone()).keep_earlier_ends();
        let importer = Importer::new(client.clone(), spec.clone()).exporters(2);
        let feed = |q: &shmproc::MessageQueue<(char, u32)>, tag: char, n: u32| {
            for i in 0..n {
                q.put(&(tag, i)).unwrap();
            }
            q.close();
        };
        feed(&qa, 'a', 50);
        let export_a = async {
            let r = ea.run(qa.as_bytes()).await.unwrap();
            // Every item of a's is in some importer's local queue once this returns.
            ea.wait_delivered(T).await.unwrap();
            r
        };
        let export_b = async {
            // b starts late: a's end marker alone must not end the import.
            tokio::time::sleep(Duration::from_millis(700)).await;
            feed(&qb, 'b', 30);
            eb.run(qb.as_bytes()).await.unwrap()
        };
        let take = async {
            let mut got = Vec::new();
            loop {
                match local.get_async().await {
                    Ok(x) => got.push(x),
                    Err(RecvError::Closed) => return got,
                    Err(e) => panic!("{e}"),
                }
            }
        };
        let (ra, rb, imported, mut got) = tokio::join!(export_a, export_b, importer.run(local.as_bytes()), take);
        assert_eq!((ra.exported, rb.exported, imported.unwrap().imported), (50, 30, 80));
        got.sort_unstable();
        let want: Vec<(char, u32)> = (0..50).map(|i| ('a', i)).chain((0..30).map(|i| ('b', i))).collect();
        assert_eq!(got, want, "each item of both exporters once");
    });
}

#[test]
fn a_server_restarted_mid_stream_loses_nothing() {
    let Some(mut server) = NatsServer::start() else { return };
    let (src, dst) = (Name::new("ms"), Name::new("md"));
    let source = ByteQueue::create(&src, 4096).unwrap();
    let local = ByteQueue::create(&dst, 4096).unwrap();
    for i in 0..2000 {
        source.put(format!("m-{i}").as_bytes()).unwrap();
    }
    source.close();
    let url = server.url();
    let mut exporter = spawn("export", &[&url, "MIDKILL", &src, "32"]);
    let mut importer = spawn("import", &[&url, "MIDKILL", "w", &dst, "2000"]);
    let deadline = Instant::now() + T;
    while local.len() < 300 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
    server.restart();
    let seen = drain(&[&local]);
    assert_eq!(exporter.expect_line("EXPORTED", T), "2000");
    let line = importer.expect_line("IMPORTED", T);
    let redelivered: u32 = line.split(' ').nth(1).unwrap().parse().unwrap();
    assert_eq!(seen.len(), 2000, "nothing lost");
    let twice: u32 = seen.values().map(|n| n - 1).sum();
    assert!(twice <= redelivered, "{twice} twice, {redelivered} redelivered");
}
