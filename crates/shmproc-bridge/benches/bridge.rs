//! The bridge's own cost: items per second and latency through local queue → export →
//! JetStream → import → local queue, against `async-nats` publishing to and consuming from
//! the same kind of stream directly (the same acknowledgement window, explicit acks), on a
//! loopback `nats-server` of the bench's own. 64 B and 4 KiB items.
//!
//! Run: `cargo bench -p shmproc-bridge --bench bridge` (needs `nats-server` on the path).
//! Both sides run in this one process (tokio tasks; a thread puts and one takes locally), as
//! the bridge's cost is what is measured, not the network's.

use async_nats::jetstream::{self, AckKind, consumer::pull, message::PublishMessage};
use futures_util::StreamExt;
use shmproc::{ByteQueue, Options};
use shmproc_bridge::{Exporter, Importer, StreamSpec};
use shmproc_testkit::nats::NatsServer;
use std::collections::VecDeque;
use std::future::IntoFuture;
use std::time::{Duration, Instant};

const WINDOW: usize = 32;

fn main() {
    let Some(server) = NatsServer::start() else { return };
    println!("bridge bench on {}", shmproc_testkit::cpu_model());
    println!("{:<34} {:>12} {:>14}", "row", "items/s", "latency (µs)");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (size, n) in [(64usize, 20_000u32), (4096, 5_000)] {
        let direct = rt.block_on(direct_throughput(&server.url(), size, n));
        let bridged = rt.block_on(bridge_throughput(&server.url(), size, n));
        let direct_lat = rt.block_on(direct_latency(&server.url(), size, 300));
        let bridged_lat = rt.block_on(bridge_latency(&server.url(), size, 300));
        println!(
            "{:<34} {:>12.0} {:>14.1}",
            format!("async-nats direct, {size} B"),
            direct,
            direct_lat
        );
        println!(
            "{:<34} {:>12.0} {:>14.1}",
            format!("shmproc bridge, {size} B"),
            bridged,
            bridged_lat
        );
        println!(
            "{:<34} {:>11.2}x {:>13.2}x",
            "  bridge / direct",
            bridged / direct,
            bridged_lat / direct_lat
        );
    }
}

fn spec(tag: &str) -> StreamSpec {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let k = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    StreamSpec::new(format!("B{tag}{k}"))
}

fn queue(name: &str) -> ByteQueue {
    let opts = Options::new().max_message_size(8192);
    ByteQueue::create_with(name, 256, &opts).unwrap()
}

/// Items per second through the bridge: a thread puts `n` items into the source queue, the
/// exporter and importer run as tasks, this task takes them from the destination queue.
async fn bridge_throughput(url: &str, size: usize, n: u32) -> f64 {
    let id = std::process::id();
    let (src, dst) = (queue(&format!("bb-s-{id}")), queue(&format!("bb-d-{id}")));
    let client = async_nats::connect(url).await.unwrap();
    let spec = spec("T");
    let exporter = Exporter::new(client.clone(), spec.clone()).in_flight(WINDOW);
    let importer = Importer::new(client.clone(), spec);
    let t0 = Instant::now();
    let src_name = format!("bb-s-{id}");
    let producer = std::thread::spawn(move || {
        let q = ByteQueue::open(&src_name).unwrap();
        let item = vec![7u8; size];
        for _ in 0..n {
            q.put(&item).unwrap();
        }
        q.close();
    });
    let take = async {
        let mut buf = Vec::new();
        let mut got = 0;
        while dst.get_into_async(&mut buf).await.is_ok() {
            got += 1;
        }
        got
    };
    let (e, i, got) = tokio::join!(exporter.run(&src), importer.run(&dst), take);
    let secs = t0.elapsed().as_secs_f64();
    producer.join().unwrap();
    e.unwrap();
    i.unwrap();
    assert_eq!(got, n);
    let _ = shmproc::remove(&format!("bb-s-{id}"));
    let _ = shmproc::remove(&format!("bb-d-{id}"));
    f64::from(n) / secs
}

/// The same through `async-nats` alone: publish with ids and a window of acks, consume with
/// a pull consumer and explicit acks.
async fn direct_throughput(url: &str, size: usize, n: u32) -> f64 {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client.clone());
    let spec = spec("D");
    let stream = js.create_stream(direct_config(&spec)).await.unwrap();
    let consumer = direct_consumer(&stream).await;
    let t0 = Instant::now();
    let publish = async {
        let payload = bytes::Bytes::from(vec![7u8; size]);
        let mut window = VecDeque::new();
        for k in 0..n {
            if window.len() >= WINDOW {
                let ack: Pending = window.pop_front().unwrap();
                ack.await.unwrap();
            }
            let msg = PublishMessage::build()
                .payload(payload.clone())
                .message_id(format!("d-{k}"));
            let ack = js.send_publish(spec.items_subject(), msg).await.unwrap();
            window.push_back(ack.into_future());
        }
        for ack in window {
            ack.await.unwrap();
        }
    };
    let consume = async {
        let mut got = 0;
        let mut messages = consumer.messages().await.unwrap();
        while got < n {
            let m = messages.next().await.unwrap().unwrap();
            m.ack().await.unwrap();
            got += 1;
        }
    };
    tokio::join!(publish, consume);
    f64::from(n) / t0.elapsed().as_secs_f64()
}

type Pending = <async_nats::jetstream::context::PublishAckFuture as IntoFuture>::IntoFuture;

/// Mean µs from a put into the source queue to the get from the destination queue, one item
/// at a time.
async fn bridge_latency(url: &str, size: usize, n: u32) -> f64 {
    let id = std::process::id();
    let (src, dst) = (queue(&format!("bl-s-{id}")), queue(&format!("bl-d-{id}")));
    let client = async_nats::connect(url).await.unwrap();
    let spec = spec("L");
    let exporter = Exporter::new(client.clone(), spec.clone()).in_flight(WINDOW);
    let importer = Importer::new(client.clone(), spec);
    let ping = async {
        let item = vec![7u8; size];
        let mut buf = Vec::new();
        tokio::time::sleep(Duration::from_millis(200)).await; // both ends running
        let t0 = Instant::now();
        for _ in 0..n {
            src.put_async(&item).await.unwrap();
            dst.get_into_async(&mut buf).await.unwrap();
        }
        let us = t0.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        src.close();
        while dst.get_into_async(&mut buf).await.is_ok() {}
        us
    };
    let (e, i, us) = tokio::join!(exporter.run(&src), importer.run(&dst), ping);
    e.unwrap();
    i.unwrap();
    let _ = shmproc::remove(&format!("bl-s-{id}"));
    let _ = shmproc::remove(&format!("bl-d-{id}"));
    us
}

/// Mean µs from a publish to its delivery to a waiting pull consumer, one at a time.
async fn direct_latency(url: &str, size: usize, n: u32) -> f64 {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client.clone());
    let spec = spec("M");
    let stream = js.create_stream(direct_config(&spec)).await.unwrap();
    let consumer = direct_consumer(&stream).await;
    let mut messages = consumer.messages().await.unwrap();
    let payload = bytes::Bytes::from(vec![7u8; size]);
    let t0 = Instant::now();
    for k in 0..n {
        let msg = PublishMessage::build()
            .payload(payload.clone())
            .message_id(format!("m-{k}"));
        let ack = js.send_publish(spec.items_subject(), msg).await.unwrap();
        let m = messages.next().await.unwrap().unwrap();
        m.ack_with(AckKind::Ack).await.unwrap();
        ack.await.unwrap();
    }
    t0.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

fn direct_config(spec: &StreamSpec) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: spec.name().to_owned(),
        subjects: vec![spec.items_subject()],
        retention: jetstream::stream::RetentionPolicy::WorkQueue,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    }
}

async fn direct_consumer(stream: &jetstream::stream::Stream) -> jetstream::consumer::PullConsumer {
    stream
        .create_consumer(pull::Config {
            durable_name: Some("direct".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap()
}
