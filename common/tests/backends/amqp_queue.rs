//! RabbitMQ backend against the real broker (127.0.0.1:5672, or MLL__BROKER__URL).
//! Every test uses its own queue names and deletes them at the end.

use mll_common::config::{BrokerSettings, Settings};
use mll_common::queue::amqp::AmqpQueue;
use mll_common::queue::{Consumer, DeadLetter, Delivery, JobQueue, Lane, LaneLoad, Outgoing, QueueError};
use mll_common::telemetry::metrics;
use std::process::Command;
use std::time::Duration;

fn settings(test: &str) -> BrokerSettings {
    let mut s = Settings::load(None).expect("config loads").broker;
    let suffix: u64 = rand::random();
    s.queue = format!("mll.test.{test}.{suffix:x}");
    s.dead_letter_exchange = format!("{}.dlx", s.queue);
    s.dead_letter_queue = format!("{}.dead", s.queue);
    s.reconnect_max_backoff_ms = 500;
    s
}

/// Deletes a test's queues if the test panics before its own clean-up
/// (`delete_topology` at the end disarms it).
struct Leftovers(Vec<String>);

impl Leftovers {
    fn of(s: &BrokerSettings) -> Self {
        Leftovers(vec![s.queue.clone(), s.dead_letter_queue.clone()])
    }
    fn disarm(mut self) {
        self.0.clear();
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for q in &self.0 {
            let _ = Command::new("rabbitmqctl").args(["delete_queue", "-q", q]).output();
        }
    }
}

fn msg(i: usize) -> Outgoing {
    Outgoing { job_id: format!("{i:032x}"), body: format!("job body {i}").into_bytes(), lane: None }
}

async fn next_within(c: &mut Box<dyn Consumer>, secs: u64) -> Option<Box<dyn Delivery>> {
    match tokio::time::timeout(Duration::from_secs(secs), c.next()).await {
        Ok(Some(Ok(d))) => Some(d),
        Ok(Some(Err(e))) => panic!("consumer error: {e}"),
        Ok(None) => panic!("consumer ended"),
        Err(_) => None,
    }
}

fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl").args(args).output().expect("rabbitmqctl is on PATH");
    assert!(out.status.success(), "rabbitmqctl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Prefetch counts of the consumers on `queue`, as the broker reports them.
/// The broker's consumer listing can lag a new subscription (seen on a busy
/// machine: a consumer that had its first delivery, not yet listed), so an
/// empty listing is read again for up to 5 s.
fn consumer_prefetch(queue: &str) -> Vec<u32> {
    let read = || -> Vec<u32> {
        rabbitmqctl(&["list_consumers", "-q", "--no-table-headers", "queue_name", "prefetch_count"])
            .lines()
            .filter_map(|l| {
                let mut cols = l.split('\t');
                (cols.next()? == queue).then(|| cols.next()?.trim().parse().ok())?
            })
            .collect()
    };
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let seen = read();
        if !seen.is_empty() || std::time::Instant::now() >= until {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Closes, from the server side, the connections whose client-provided name
/// contains `needle` (only ours: other tests share the broker). Returns how many.
fn close_connections_named(needle: &str) -> usize {
    // Table output: the pid in the form close_connection accepts (the JSON
    // formatter writes "#PID<...>", which it rejects).
    let table = rabbitmqctl(&["list_connections", "-q", "--no-table-headers", "pid", "client_properties"]);
    let mut n = 0;
    for line in table.lines().filter(|l| l.contains(needle)) {
        let pid = line.split('\t').next().expect("pid column").trim();
        rabbitmqctl(&["close_connection", pid, "test"]);
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_consume_ack() {
    let s = settings("basic");
    let q = AmqpQueue::connect(&s).await.unwrap();
    let guard = Leftovers::of(&s);
    q.publish(&[msg(1), msg(2), msg(3)]).await.unwrap();
    assert_eq!(q.depths(&[]).await.unwrap(), (3, 0));
    let mut c = q.consumer("basic").await.unwrap();
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let d = next_within(&mut c, 10).await.expect("a delivery");
        assert_eq!(d.previous_deliveries(), 0);
        bodies.push(String::from_utf8(d.body().to_vec()).unwrap());
        assert!(d.ack().await.unwrap(), "ack taken");
        assert!(!d.ack().await.unwrap(), "a second ack of the same delivery is not taken");
    }
    assert_eq!(bodies, ["job body 1", "job body 2", "job body 3"]);
    c.cancel().await.unwrap();
    assert!(c.next().await.is_none(), "a cancelled consumer ends");
    assert_eq!(q.depths(&[]).await.unwrap(), (0, 0));
    q.delete_topology(&[]).await.unwrap();
    guard.disarm();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_to_a_missing_queue_is_unroutable() {
    let s = settings("unroutable");
    let q = AmqpQueue::connect(&s).await.unwrap();
    let guard = Leftovers::of(&s);
    q.delete_topology(&[]).await.unwrap();
    let before = metrics().coordinator_returned.get();
    let err = q.publish(&[msg(7)]).await.unwrap_err();
    assert!(matches!(err, QueueError::Unroutable { ref job, .. } if job == &format!("{:032x}", 7)), "{err}");
    assert!(!err.is_transient());
    assert!(metrics().coordinator_returned.get() > before);
    // The channel stays usable: reconnecting declares the topology again.
    let q2 = AmqpQueue::connect(&s).await.unwrap();
    q2.publish(&[msg(8)]).await.unwrap();
    assert_eq!(q2.depths(&[]).await.unwrap(), (1, 0));
    q2.delete_topology(&[]).await.unwrap();
    guard.disarm();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused_before_publishing() {
    let mut s = settings("oversize");
    s.max_message_bytes = 16;
    let q = AmqpQueue::connect(&s).await.unwrap();
    let guard = Leftovers::of(&s);
    let big = Outgoing { job_id: "big".into(), body: vec![0; 17], lane: None };
    let err = q.publish(&[msg(1), big]).await.unwrap_err();
    assert!(err.to_string().contains("max_message_bytes"), "{err}");
    assert_eq!(q.depths(&[]).await.unwrap(), (0, 0), "nothing of the batch was sent");
    q.delete_topology(&[]).await.unwrap();
    guard.disarm();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_carries_the_reason() {
    let s = settings("deadletter");
    let q = AmqpQueue::connect(&s).await.unwrap();
    let guard = Leftovers::of(&s);
    q.publish(&[msg(1), msg(2)]).await.unwrap();
    let mut c = q.consumer("dl").await.unwrap();
    let d = next_within(&mut c, 10).await.unwrap();
    let reason = "undecodable envelope: unknown protocol version 9";
    assert!(d.dead_letter(DeadLetter { job_id: Some("feedbeef".into()), reason: reason.into() }).await.unwrap());
    let d2 = next_within(&mut c, 10).await.unwrap();
    assert!(d2.ack().await.unwrap());
    assert_eq!(q.depths(&[]).await.unwrap(), (0, 1));
    let dead = q.drain_dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, reason);
    assert_eq!(dead[0].job_id.as_deref(), Some("feedbeef"));
    assert_eq!(dead[0].body, b"job body 1");
    assert_eq!(q.depths(&[]).await.unwrap(), (0, 0), "drained messages are acked");
    assert!(q.drain_dead_letters().await.unwrap().is_empty());
    q.delete_topology(&[]).await.unwrap();
    guard.disarm();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_dead_letters_after_the_delivery_limit() {
    let mut s = settings("limit");
    s.delivery_limit = 2;
    let q = AmqpQueue::connect(&s).await.unwrap();
    let guard = Leftovers::of(&s);
    q.publish(&[msg(42)]).await.unwrap();
    let mut c = q.consumer("limit").await.unwrap();
    let mut seen = Vec::new();
    while let Some(d) = next_within(&mut c, 3).await {
        seen.push(d.previous_deliveries());
        assert!(d.requeue().await.unwrap());
        assert!(seen.len() < 10, "the broker never dead-lettered the message: {seen:?}");
    }
    // Delivered 1 + delivery_limit times, counting up from 0.
    assert_eq!(seen, [0, 1, 2], "previous_deliveries per delivery");
    let dead = q.drain_dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].job_id.as_deref(), Some(format!("{:032x}", 42).as_str()), "job id from message_id");
    assert!(dead[0].reason.starts_with("delivery limit exceeded: delivered 3 times"), "{}", dead[0].reason);
    assert!(dead[0].reason.contains("crash or hang"), "{}", dead[0].reason);
    q.delete_topology(&[]).await.unwrap();
    guard.disarm();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_is_honoured_and_reapplied_after_a_reconnect() {
    let s = settings("prefetch");
    let q = AmqpQueue::connect(&s).await.unwrap();
    let guard = Leftovers::of(&s);
    q.publish(&[msg(1), msg(2), msg(3)]).await.unwrap();
    let suffix: u32 = rand::random();
    let tag = format!("prefetch-{suffix:x}");
    let mut c = q.consumer(&tag).await.unwrap();
    let d1 = next_within(&mut c, 10).await.expect("first delivery");
    assert!(next_within(&mut c, 1).await.is_none(), "prefetch 1: no second delivery while the first is unacked");
    assert_eq!(consumer_prefetch(&s.queue), [1]);

    let reconnects = metrics().reconnects.with_label_values(&["broker"]).get();
    assert_eq!(close_connections_named(&tag), 1, "our consumer's connection was found");
    // The delivery's channel is gone: the ack is not taken, the broker requeues.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!d1.ack().await.unwrap(), "an ack on a dead channel reports false");

    let d = next_within(&mut c, 30).await.expect("a delivery after the reconnect");
    assert!(metrics().reconnects.with_label_values(&["broker"]).get() > reconnects);
    assert!(next_within(&mut c, 1).await.is_none(), "still prefetch 1 after the reconnect");
    assert_eq!(consumer_prefetch(&s.queue), [1], "the broker sees prefetch 1 again");
    assert!(d.ack().await.unwrap());
    // Everything is still there: 3 published, 1 acked.
    let mut left = 0;
    while let Some(d) = next_within(&mut c, 2).await {
        assert!(d.ack().await.unwrap());
        left += 1;
    }
    assert_eq!(left, 2);
    c.cancel().await.unwrap();
    q.delete_topology(&[]).await.unwrap();
    guard.disarm();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_reconnects_after_its_connection_is_closed() {
    let s = settings("pubreconnect");
    let q = AmqpQueue::connect(&s).await.unwrap();
    let guard = Leftovers::of(&s);
    q.publish(&[msg(1)]).await.unwrap();
    // Connections are named after their queue, so only ours is closed.
    assert_eq!(close_connections_named(&format!("mll-publisher:{}", s.queue)), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    q.publish(&[msg(2)]).await.expect("publish after the connection was closed");
    assert_eq!(q.depths(&[]).await.unwrap(), (2, 0));
    q.delete_topology(&[]).await.unwrap();
    guard.disarm();
}

#[test]
fn settings_for_tests_are_unique() {
    assert_ne!(settings("x").queue, settings("x").queue);
}

/// amqps:// goes through rustls (compiled in, crypto provider available): the
/// broker here speaks plain AMQP, so the handshake fails with an error (not a
/// panic about a missing TLS backend or provider).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_urls_use_tls() {
    let mut s = settings("tls");
    s.url = s.url.replacen("amqp://", "amqps://", 1);
    s.connect_timeout_s = 5;
    let err = AmqpQueue::connect(&s).await.err().expect("a TLS handshake with a plain-text port fails");
    let text = err.to_string();
    assert!(matches!(err, QueueError::Connect { .. }), "{text}");
    assert!(!text.contains("guest:guest"), "the password is redacted: {text}");
    eprintln!("{text}");
}

/// A wrong password is named as such, not as an unreachable broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_says_authentication_failed() {
    let mut s = settings("auth");
    s.url = s.url.replacen("guest:guest", "guest:not-the-password", 1);
    assert!(s.url.contains("not-the-password"), "the test URL carries a password: {}", s.url);
    let err = AmqpQueue::connect(&s).await.err().expect("a wrong password is refused");
    let text = err.to_string();
    assert!(matches!(err, QueueError::Auth { .. }), "{text}");
    assert!(text.contains("authentication failed for user guest"), "{text}");
    assert!(!text.contains("not-the-password"), "the password is redacted: {text}");
    assert!(!err.is_transient());
}

/// Lanes: each lane is its own queue with its own ready count and consumers;
/// a consumer moves between them, also with a delivery in hand (acked on the
/// old lane afterwards), and a lane's broker-side dead letters reach the
/// dead-letter queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanes_are_queues_a_consumer_moves_between() {
    let mut s = settings("lanes");
    s.delivery_limit = 1;
    let (a, b) = (Lane::of_model("models/a"), Lane::of_model("models/b"));
    let q = AmqpQueue::connect(&s).await.unwrap();
    let mut guard = Leftovers::of(&s);
    guard.0.extend([a.queue_name(&s.queue), b.queue_name(&s.queue)]);
    let in_lane = |i: usize, lane: &Lane| Outgoing { lane: Some(lane.clone()), ..msg(i) };
    q.publish(&[in_lane(1, &a), in_lane(2, &a), in_lane(3, &a), in_lane(4, &b), in_lane(5, &b), msg(6)]).await.unwrap();
    let ready = |loads: &[LaneLoad]| loads.iter().map(|l| (l.ready, l.consumers)).collect::<Vec<_>>();
    let lanes = [a.clone(), b.clone()];
    assert_eq!(ready(&q.lane_loads(&lanes).await.unwrap()), [(1, 0), (3, 0), (2, 0)]);
    assert_eq!(q.depths(&lanes).await.unwrap(), (6, 0));

    let mut c = q.consumer("lanes").await.unwrap();
    assert_eq!(c.lane(), None);
    let d = next_within(&mut c, 10).await.expect("the main queue's message");
    assert_eq!(d.body(), b"job body 6");
    assert!(d.ack().await.unwrap());
    c.switch_to(Some(a.clone())).await.unwrap();
    assert_eq!(c.lane(), Some(&a));
    let held = next_within(&mut c, 10).await.expect("lane a's first message");
    assert_eq!(held.body(), b"job body 1");
    assert_eq!(ready(&q.lane_loads(&lanes).await.unwrap())[1], (2, 1), "two ready in a, one consumer");
    // Move with a delivery in hand: it stays valid and is acked after.
    c.switch_to(Some(b.clone())).await.unwrap();
    assert!(held.ack().await.unwrap(), "a delivery from the old lane is still acked");
    for want in ["job body 4", "job body 5"] {
        let d = next_within(&mut c, 10).await.expect("lane b's message");
        assert_eq!(d.body(), want.as_bytes());
        assert!(d.ack().await.unwrap());
    }
    assert_eq!(ready(&q.lane_loads(&lanes).await.unwrap()), [(0, 0), (2, 0), (0, 1)]);
    // Back to a: a requeue past the delivery limit dead-letters from the lane.
    c.switch_to(Some(a.clone())).await.unwrap();
    let d = next_within(&mut c, 10).await.expect("lane a's second message");
    assert!(d.requeue().await.unwrap());
    let d = next_within(&mut c, 10).await.expect("redelivered or the next");
    assert!(d.ack().await.unwrap());
    let mut left = 0;
    while let Some(d) = next_within(&mut c, 3).await {
        assert!(d.ack().await.unwrap());
        left += 1;
    }
    c.cancel().await.unwrap();
    let dead = q.drain_dead_letters().await.unwrap();
    assert_eq!(dead.len() + left + 1, 2, "lane a's last two messages: acked, or dead-lettered past the limit ({dead:?})");
    assert_eq!(q.depths(&lanes).await.unwrap(), (0, 0));
    q.delete_topology(&lanes).await.unwrap();
    guard.disarm();
}
