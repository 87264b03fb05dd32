//! RabbitMQ backend on lapin 4.
//!
//! Topology (declared idempotently on every (re)connect): a durable quorum
//! work queue with a dead-letter exchange and a delivery limit; a direct
//! dead-letter exchange; a quorum dead-letter queue bound to it with the work
//! queue's name as routing key (the key both the broker's and our own
//! dead-letters carry). Each model's lane (`lanes`) is a quorum queue
//! `<queue>.lane.<hash>` with the same arguments, declared before the first
//! publish to it, whose broker-side dead letters carry the work queue's name
//! as routing key too.
//!
//! Reliability choices:
//! - every publish is persistent and `mandatory`, on a channel in confirm mode;
//!   a returned message is a failed publish even though the broker acks it;
//! - each consumer owns its connection and reconnects itself with exponential
//!   backoff (our own loop rather than lapin's auto-recovery, so the prefetch
//!   and the declarations are re-applied by code we test, and reconnects are
//!   counted);
//! - a delivery from a dead channel acks as `Ok(false)`: the broker requeues
//!   everything unacked on a closed channel, so the job comes back.

use super::{Consumer, DeadLetter, DeadLettered, Delivery, JobQueue, Lane, LaneLoad, Outgoing, QueueError};
use crate::config::{redact_url, BrokerSettings};
use crate::telemetry::metrics;
use async_trait::async_trait;
use futures::StreamExt;
use lapin::message::Delivery as LapinDelivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind, ExchangeKind};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Header carrying why a job was dead-lettered.
pub const REASON_HEADER: &str = "x-mll-reason";
/// Header carrying the dead-lettered job's id.
pub const JOB_ID_HEADER: &str = "x-mll-job-id";
/// Reasons longer than this are cut so the header fits any frame size.
const MAX_REASON_BYTES: usize = 4000;
/// Whole-batch publish retries after a connection-level failure.
const PUBLISH_ATTEMPTS: u32 = 3;

/// A connection with one channel, kept together so the connection lives as
/// long as anything still uses the channel.
struct Link {
    conn: Arc<Connection>,
    channel: Channel,
}

impl Link {
    fn alive(&self) -> bool {
        self.conn.status().connected() && self.channel.status().connected()
    }
}

/// RabbitMQ job queue. Cheap to share behind an `Arc`; publishes are serialised
/// on one confirm channel, each consumer has its own connection.
pub struct AmqpQueue {
    settings: BrokerSettings,
    uri: String,
    publisher: Mutex<Option<Link>>,
    /// Lane queues declared by this publisher (durable: once is enough).
    declared: Mutex<HashSet<Lane>>,
}

impl AmqpQueue {
    /// Connects, declares the topology and opens the publishing channel.
    pub async fn connect(settings: &BrokerSettings) -> Result<Self, QueueError> {
        let uri = connection_uri(settings)?;
        let link = open_publisher(settings, &uri).await?;
        Ok(AmqpQueue { settings: settings.clone(), uri, publisher: Mutex::new(Some(link)), declared: Mutex::default() })
    }

    pub fn settings(&self) -> &BrokerSettings {
        &self.settings
    }

    /// Deletes the work queue, the given lanes' queues, the dead-letter queue
    /// and the dead-letter exchange (tests and clean-up of throw-away queues).
    pub async fn delete_topology(&self, lanes: &[Lane]) -> Result<(), QueueError> {
        let link = self.temp_channel().await?;
        let s = &self.settings;
        let lane_queues: Vec<String> = lanes.iter().map(|l| l.queue_name(&s.queue)).collect();
        for q in [&s.queue, &s.dead_letter_queue].into_iter().chain(&lane_queues) {
            link.channel.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await.map_err(|e| op_err("queue.delete", e))?;
        }
        link.channel
            .exchange_delete(s.dead_letter_exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .map_err(|e| op_err("exchange.delete", e))?;
        let _ = link.channel.close(200, "done".into()).await;
        Ok(())
    }

    /// A fresh channel on the publisher's connection (reconnecting it if gone),
    /// for one-off operations that may close their channel (a passive declare
    /// of a missing queue does).
    async fn temp_channel(&self) -> Result<Link, QueueError> {
        let mut guard = self.publisher.lock().await;
        let link = self.ensure_publisher(&mut guard).await?;
        let channel = link.conn.create_channel().await.map_err(|e| op_err("channel.open", e))?;
        Ok(Link { conn: link.conn.clone(), channel })
    }

    async fn ensure_publisher<'a>(&self, guard: &'a mut Option<Link>) -> Result<&'a Link, QueueError> {
        if guard.as_ref().is_some_and(|l| !l.alive()) {
            *guard = None;
        }
        if guard.is_none() {
            let link = open_publisher(&self.settings, &self.uri).await?;
            metrics().reconnects.with_label_values(&["broker"]).inc();
            tracing::info!(url = %redact_url(&self.settings.url), "publisher reconnected to the broker");
            *guard = Some(link);
        }
        Ok(guard.as_ref().expect("set above"))
    }

    async fn publish_once(&self, channel: &Channel, messages: &[Outgoing]) -> Result<(), QueueError> {
        // Every lane queue exists before anything is routed to it (a message
        // to a missing queue would come back unroutable).
        {
            let mut declared = self.declared.lock().await;
            for lane in messages.iter().filter_map(|m| m.lane.as_ref()) {
                if !declared.contains(lane) {
                    declare_lane(channel, &self.settings, lane).await?;
                    declared.insert(lane.clone());
                }
            }
        }
        let mut pending = Vec::with_capacity(messages.len());
        // Pipeline: send everything, then wait for the confirms.
        for m in messages {
            let props = BasicProperties::default().with_delivery_mode(2).with_message_id(ShortString::from(m.job_id.as_str()));
            let routing_key = match &m.lane {
                Some(lane) => lane.queue_name(&self.settings.queue),
                None => self.settings.queue.clone(),
            };
            let confirm = channel
                .basic_publish(
                    "".into(),
                    routing_key.as_str().into(),
                    BasicPublishOptions { mandatory: true, ..Default::default() },
                    &m.body,
                    props,
                )
                .await
                .map_err(|e| QueueError::Publish { job: m.job_id.clone(), reason: e.to_string() })?;
            pending.push((m, confirm));
        }
        let mut first_err = None;
        for (m, confirm) in pending {
            let outcome = match confirm.await {
                Ok(Confirmation::Ack(None)) => Ok(()),
                Ok(Confirmation::Ack(Some(_returned))) => {
                    metrics().coordinator_returned.inc();
                    let queue = m.lane.as_ref().map_or_else(|| self.settings.queue.clone(), |l| l.queue_name(&self.settings.queue));
                    Err(QueueError::Unroutable { job: m.job_id.clone(), queue })
                }
                Ok(Confirmation::Nack(_)) => Err(QueueError::Nacked { job: m.job_id.clone() }),
                Ok(Confirmation::NotRequested) => Err(QueueError::Publish {
                    job: m.job_id.clone(),
                    reason: "the channel is not in confirm mode (a bug: publishes must be confirmed)".into(),
                }),
                Err(e) => Err(QueueError::Publish { job: m.job_id.clone(), reason: e.to_string() }),
            };
            if let (Err(e), None) = (outcome, &first_err) {
                first_err = Some(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[async_trait]
impl JobQueue for AmqpQueue {
    async fn publish(&self, messages: &[Outgoing]) -> Result<(), QueueError> {
        if let Some(m) = messages.iter().find(|m| m.body.len() > self.settings.max_message_bytes) {
            return Err(QueueError::Publish {
                job: m.job_id.clone(),
                reason: format!(
                    "the message has {} bytes, more than broker.max_message_bytes = {}",
                    m.body.len(),
                    self.settings.max_message_bytes
                ),
            });
        }
        let mut guard = self.publisher.lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let link = self.ensure_publisher(&mut guard).await?;
            match self.publish_once(&link.channel.clone(), messages).await {
                Ok(()) => return Ok(()),
                // Connection-level failure: drop the link and publish the whole
                // batch again (duplicates are harmless: commits are idempotent).
                Err(e @ QueueError::Publish { .. }) => {
                    *guard = None;
                    if attempt >= PUBLISH_ATTEMPTS {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, attempt, "publish failed; reconnecting and publishing the batch again");
                    tokio::time::sleep(backoff(attempt, self.settings.reconnect_max_backoff_ms)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn consumer(&self, tag: &str) -> Result<Box<dyn Consumer>, QueueError> {
        let session = Session::open(&self.settings, &self.uri, tag, None, 0).await?;
        Ok(Box::new(AmqpConsumer {
            settings: self.settings.clone(),
            uri: self.uri.clone(),
            tag: tag.to_string(),
            session: Some(session),
            cancelled: false,
            lane: None,
            subscription: 0,
            pending: VecDeque::new(),
        }))
    }

    async fn drain_dead_letters(&self) -> Result<Vec<DeadLettered>, QueueError> {
        let link = self.temp_channel().await?;
        let mut out = Vec::new();
        let mut last_tag = None;
        loop {
            let got = link
                .channel
                .basic_get(self.settings.dead_letter_queue.as_str().into(), BasicGetOptions { no_ack: false })
                .await
                .map_err(|e| op_err("basic.get (dead-letter queue)", e))?;
            let Some(msg) = got else { break };
            let d = msg.delivery;
            last_tag = Some(d.delivery_tag);
            out.push(DeadLettered {
                job_id: header_str(&d.properties, JOB_ID_HEADER).or_else(|| d.properties.message_id().as_ref().map(|s| s.to_string())),
                reason: dead_letter_reason(&d.properties, self.settings.delivery_limit),
                body: d.data,
            });
        }
        // One cumulative ack once every message is in hand: if anything above
        // failed, the channel closes and the broker keeps all of them.
        if let Some(tag) = last_tag {
            link.channel
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await
                .map_err(|e| op_err("basic.ack (dead-letter queue)", e))?;
        }
        let _ = link.channel.close(200, "drained".into()).await;
        Ok(out)
    }

    async fn depths(&self, lanes: &[Lane]) -> Result<(u64, u64), QueueError> {
        let loads = self.lane_loads(lanes).await?;
        let link = self.temp_channel().await?;
        let q = &self.settings.dead_letter_queue;
        let declared = link
            .channel
            .queue_declare(q.as_str().into(), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default())
            .await
            .map_err(|e| QueueError::Operation { op: "queue.declare (passive)", reason: format!("queue '{q}': {e} (does it exist?)") })?;
        let _ = link.channel.close(200, "depths".into()).await;
        Ok((loads.iter().map(|l| l.ready).sum(), u64::from(declared.message_count())))
    }

    async fn lane_loads(&self, lanes: &[Lane]) -> Result<Vec<LaneLoad>, QueueError> {
        let link = self.temp_channel().await?;
        let mut out = Vec::with_capacity(lanes.len() + 1);
        for lane in std::iter::once(None).chain(lanes.iter().cloned().map(Some)) {
            // A full declare (not passive): it answers for a lane queue that
            // does not exist yet by creating it empty, where a passive one
            // would close the channel.
            let declared = match &lane {
                None => work_queue(&link.channel, &self.settings).await?,
                Some(l) => declare_lane(&link.channel, &self.settings, l).await?,
            };
            out.push(LaneLoad::new(lane, u64::from(declared.message_count()), declared.consumer_count()));
        }
        let _ = link.channel.close(200, "lane loads".into()).await;
        Ok(out)
    }
}

/// The broker URI with heartbeat and connection timeout filled in unless the
/// URL sets them itself.
fn connection_uri(s: &BrokerSettings) -> Result<String, QueueError> {
    let mut u = url::Url::parse(&s.url)
        .map_err(|e| QueueError::Connect { url: redact_url(&s.url), reason: format!("broker.url does not parse: {e}") })?;
    let has = |k: &str| u.query_pairs().any(|(key, _)| key == k);
    let (hb, ct) = (has("heartbeat"), has("connection_timeout"));
    {
        let mut q = u.query_pairs_mut();
        if !hb {
            q.append_pair("heartbeat", &s.heartbeat_s.to_string());
        }
        if !ct {
            q.append_pair("connection_timeout", &(s.connect_timeout_s * 1000).to_string());
        }
    }
    Ok(u.to_string())
}

async fn open_connection(s: &BrokerSettings, uri: &str, name: &str) -> Result<Connection, QueueError> {
    let props = ConnectionProperties::default().with_connection_name(LongString::from(name));
    let connect = Connection::connect(uri, props);
    match tokio::time::timeout(Duration::from_secs(s.connect_timeout_s.max(1)), connect).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(connect_error(&s.url, e)),
        Err(_) => Err(QueueError::Connect {
            url: redact_url(&s.url),
            reason: format!("no answer within broker.connect_timeout_s = {} s", s.connect_timeout_s),
        }),
    }
}

/// A refused login is told apart from an unreachable broker: RabbitMQ answers
/// it with ACCESS_REFUSED (reply code 403) and closes the connection.
fn connect_error(url: &str, e: lapin::Error) -> QueueError {
    let reason = e.to_string();
    let refused = reason.contains("ACCESS_REFUSED") || reason.contains("ACCESSREFUSED") || reason.contains("Login was refused");
    if refused {
        let user = url::Url::parse(url).ok().map(|u| u.username().to_string()).filter(|u| !u.is_empty());
        return QueueError::Auth { url: redact_url(url), user: user.unwrap_or_else(|| "guest".into()), reason };
    }
    QueueError::Connect { url: redact_url(url), reason }
}

/// Declares the work queue, the dead-letter exchange and queue, and the binding.
/// The arguments of the work queue and of every lane queue: quorum, dead
/// letters to the dead-letter exchange, and the delivery limit. A lane's dead
/// letters carry the work queue's name as routing key (the dead-letter
/// queue's binding); the work queue's carry it anyway, and its arguments stay
/// as older releases declared them.
fn work_args(s: &BrokerSettings, lane: bool) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(s.dead_letter_exchange.as_str().into()));
    if lane {
        args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(s.queue.as_str().into()));
    }
    args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(i64::from(s.delivery_limit)));
    args
}

fn mismatch(what: &str, name: &str, e: lapin::Error) -> QueueError {
    QueueError::Operation {
        op: "declare",
        reason: format!(
            "{what} '{name}': {e} (if it exists with other arguments, e.g. a changed broker.delivery_limit, \
             delete it or pick another name)"
        ),
    }
}

async fn work_queue(channel: &Channel, s: &BrokerSettings) -> Result<lapin::Queue, QueueError> {
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    channel.queue_declare(s.queue.as_str().into(), durable, work_args(s, false)).await.map_err(|e| mismatch("work queue", &s.queue, e))
}

async fn declare_lane(channel: &Channel, s: &BrokerSettings, lane: &Lane) -> Result<lapin::Queue, QueueError> {
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    let name = lane.queue_name(&s.queue);
    channel.queue_declare(name.as_str().into(), durable, work_args(s, true)).await.map_err(|e| mismatch("lane queue", &name, e))
}

async fn declare_topology(channel: &Channel, s: &BrokerSettings) -> Result<(), QueueError> {
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    work_queue(channel, s).await?;
    channel
        .exchange_declare(
            s.dead_letter_exchange.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .map_err(|e| mismatch("dead-letter exchange", &s.dead_letter_exchange, e))?;
    let mut dl_args = FieldTable::default();
    dl_args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    channel
        .queue_declare(s.dead_letter_queue.as_str().into(), durable, dl_args)
        .await
        .map_err(|e| mismatch("dead-letter queue", &s.dead_letter_queue, e))?;
    channel
        .queue_bind(
            s.dead_letter_queue.as_str().into(),
            s.dead_letter_exchange.as_str().into(),
            s.queue.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| op_err("queue.bind (dead-letter queue)", e))?;
    Ok(())
}

async fn open_publisher(s: &BrokerSettings, uri: &str) -> Result<Link, QueueError> {
    let conn = open_connection(s, uri, &format!("mll-publisher:{}", s.queue)).await?;
    let channel = conn.create_channel().await.map_err(|e| op_err("channel.open", e))?;
    declare_topology(&channel, s).await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(|e| op_err("confirm.select", e))?;
    Ok(Link { conn: Arc::new(conn), channel })
}

fn op_err(op: &'static str, e: lapin::Error) -> QueueError {
    QueueError::Operation { op, reason: e.to_string() }
}

/// Broker reconnects: 100 ms doubling per attempt up to the configured cap,
/// jittered so workers that lost the broker together do not return together.
fn backoff(attempt: u32, max_ms: u64) -> Duration {
    crate::backoff::Backoff::new(Duration::from_millis(100), Duration::from_millis(max_ms)).delay(attempt)
}

/// Errors after which the channel (or connection) is gone: whatever it held
/// unacked goes back to the queue, so an ack there is simply "not taken".
fn channel_gone(e: &lapin::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::IOError(_)
            | ErrorKind::InvalidChannel(_)
            | ErrorKind::InvalidChannelState(..)
            | ErrorKind::InvalidConnectionState(_)
            | ErrorKind::ProtocolError(_)
            | ErrorKind::MissingHeartbeatError
            | ErrorKind::RuntimeShutdownError(_)
    )
}

/// One consumer connection: the consuming channel (with its QoS) and a confirm
/// channel for dead-letter copies.
struct Session {
    conn: Arc<Connection>,
    channel: Channel,
    dl_channel: Channel,
    stream: lapin::Consumer,
}

impl Session {
    /// Connects and consumes `lane` (None: the work queue) as subscription
    /// number `n` of this consumer.
    async fn open(s: &BrokerSettings, uri: &str, tag: &str, lane: Option<&Lane>, n: u64) -> Result<Session, QueueError> {
        let conn = open_connection(s, uri, &format!("mll-consumer:{}:{tag}", s.queue)).await?;
        let channel = conn.create_channel().await.map_err(|e| op_err("channel.open", e))?;
        declare_topology(&channel, s).await?;
        // Per-consumer prefetch (global = false), set before consuming and on
        // every new channel, so a reconnect never comes back unlimited.
        channel.basic_qos(s.prefetch, BasicQosOptions { global: false }).await.map_err(|e| op_err("basic.qos", e))?;
        let stream = subscribe(&channel, s, tag, lane, n).await?;
        let dl_channel = conn.create_channel().await.map_err(|e| op_err("channel.open", e))?;
        dl_channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(|e| op_err("confirm.select", e))?;
        Ok(Session { conn: Arc::new(conn), channel, dl_channel, stream })
    }
}

/// The consumer tag of subscription `n` (a tag is not reused after a move).
fn subscription_tag(tag: &str, n: u64) -> String {
    if n == 0 {
        tag.to_string()
    } else {
        format!("{tag}.{n}")
    }
}

async fn subscribe(channel: &Channel, s: &BrokerSettings, tag: &str, lane: Option<&Lane>, n: u64) -> Result<lapin::Consumer, QueueError> {
    let queue = match lane {
        Some(l) => {
            declare_lane(channel, s, l).await?;
            l.queue_name(&s.queue)
        }
        None => s.queue.clone(),
    };
    channel
        .basic_consume(
            queue.as_str().into(),
            subscription_tag(tag, n).as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| op_err("basic.consume", e))
}

pub struct AmqpConsumer {
    settings: BrokerSettings,
    uri: String,
    tag: String,
    session: Option<Session>,
    cancelled: bool,
    /// The lane consumed (None: the work queue) and its subscription number.
    lane: Option<Lane>,
    subscription: u64,
    /// Deliveries the broker sent on a lane this consumer has left.
    pending: VecDeque<AmqpDelivery>,
}

impl AmqpConsumer {
    /// Re-opens the session with exponential backoff until it works.
    async fn reconnect(&mut self) {
        self.session = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let delay = backoff(attempt, self.settings.reconnect_max_backoff_ms);
            tokio::time::sleep(delay).await;
            self.subscription += 1;
            match Session::open(&self.settings, &self.uri, &self.tag, self.lane.as_ref(), self.subscription).await {
                Ok(s) => {
                    metrics().reconnects.with_label_values(&["broker"]).inc();
                    tracing::info!(consumer = %self.tag, attempt, "consumer reconnected to the broker");
                    self.session = Some(s);
                    return;
                }
                Err(e) => tracing::warn!(consumer = %self.tag, attempt, error = %e, "broker reconnect failed; retrying"),
            }
        }
    }

    fn wrap(&self, session: &Session, d: LapinDelivery) -> AmqpDelivery {
        let previous = header_u64(&d.properties, "x-delivery-count").unwrap_or(0).min(u64::from(u32::MAX)) as u32;
        AmqpDelivery {
            message_id: d.properties.message_id().as_ref().map(|s| s.to_string()),
            body: d.data,
            acker: d.acker,
            previous,
            dl_channel: session.dl_channel.clone(),
            dl_exchange: self.settings.dead_letter_exchange.clone(),
            routing_key: self.settings.queue.clone(),
            _conn: session.conn.clone(),
        }
    }
}

#[async_trait]
impl Consumer for AmqpConsumer {
    async fn next(&mut self) -> Option<Result<Box<dyn Delivery>, QueueError>> {
        if let Some(d) = self.pending.pop_front() {
            return Some(Ok(Box::new(d)));
        }
        loop {
            if self.cancelled {
                return None;
            }
            if self.session.is_none() {
                self.reconnect().await;
            }
            let session = self.session.as_mut().expect("connected above");
            match session.stream.next().await {
                Some(Ok(d)) => {
                    let session = self.session.as_ref().expect("still connected");
                    return Some(Ok(Box::new(self.wrap(session, d))));
                }
                Some(Err(e)) => {
                    tracing::warn!(consumer = %self.tag, error = %e, "consumer channel failed; reconnecting");
                    self.session = None;
                }
                None if self.cancelled => return None,
                None => {
                    // Server-side cancel (queue deleted, node down) or closed connection.
                    tracing::warn!(consumer = %self.tag, "consumer stream ended; reconnecting");
                    self.session = None;
                }
            }
        }
    }

    async fn cancel(&mut self) -> Result<(), QueueError> {
        self.cancelled = true;
        if let Some(s) = &self.session {
            if s.channel.status().connected() {
                s.channel
                    .basic_cancel(subscription_tag(&self.tag, self.subscription).as_str().into(), BasicCancelOptions::default())
                    .await
                    .map_err(|e| op_err("basic.cancel", e))?;
            }
        }
        Ok(())
    }

    fn lane(&self) -> Option<&Lane> {
        self.lane.as_ref()
    }

    async fn switch_to(&mut self, lane: Option<Lane>) -> Result<(), QueueError> {
        if self.cancelled || lane == self.lane {
            return Ok(());
        }
        let old_tag = subscription_tag(&self.tag, self.subscription);
        self.lane = lane;
        self.subscription += 1;
        let Some(session) = self.session.as_mut() else {
            // Disconnected: the reconnect consumes the new lane.
            return Ok(());
        };
        let moved = async {
            // cancel-ok comes after every delivery sent on the old
            // subscription, so once it is in, those deliveries are buffered
            // in its stream: keep them, then stop reading it.
            session
                .channel
                .basic_cancel(old_tag.as_str().into(), BasicCancelOptions::default())
                .await
                .map_err(|e| op_err("basic.cancel", e))?;
            let mut left = Vec::new();
            while let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_millis(50), session.stream.next()).await {
                left.push(d);
            }
            let stream = subscribe(&session.channel, &self.settings, &self.tag, self.lane.as_ref(), self.subscription).await?;
            Ok::<_, QueueError>((left, stream))
        }
        .await;
        match moved {
            Ok((left, stream)) => {
                let session = self.session.as_mut().expect("checked above");
                session.stream = stream;
                let session = self.session.as_ref().expect("checked above");
                let wrapped: Vec<AmqpDelivery> = left.into_iter().map(|d| self.wrap(session, d)).collect();
                self.pending.extend(wrapped);
                Ok(())
            }
            Err(e) => {
                // Whatever went wrong, a fresh session on the new lane puts
                // things right: the broker requeues what the old channel held.
                tracing::warn!(consumer = %self.tag, error = %e, "moving to another lane failed; reconnecting");
                self.session = None;
                Ok(())
            }
        }
    }
}

struct AmqpDelivery {
    body: Vec<u8>,
    message_id: Option<String>,
    acker: lapin::Acker,
    previous: u32,
    dl_channel: Channel,
    dl_exchange: String,
    routing_key: String,
    /// Keeps the connection open while the delivery is in hand, even if the
    /// consumer was dropped or cancelled.
    _conn: Arc<Connection>,
}

fn ack_result(op: &'static str, r: lapin::Result<bool>) -> Result<bool, QueueError> {
    match r {
        Ok(taken) => Ok(taken),
        Err(e) if channel_gone(&e) => {
            tracing::warn!(op, error = %e, "the delivery's channel is gone; the broker will redeliver the job");
            Ok(false)
        }
        Err(e) => Err(op_err(op, e)),
    }
}

#[async_trait]
impl Delivery for AmqpDelivery {
    fn body(&self) -> &[u8] {
        &self.body
    }

    fn previous_deliveries(&self) -> u32 {
        self.previous
    }

    async fn ack(&self) -> Result<bool, QueueError> {
        ack_result("basic.ack", self.acker.ack(BasicAckOptions::default()).await)
    }

    async fn requeue(&self) -> Result<bool, QueueError> {
        ack_result("basic.nack", self.acker.nack(BasicNackOptions { requeue: true, multiple: false }).await)
    }

    async fn dead_letter(&self, dl: DeadLetter) -> Result<bool, QueueError> {
        if !self.acker.usable() {
            return Ok(false);
        }
        let job = dl.job_id.clone().or_else(|| self.message_id.clone());
        let mut reason = dl.reason;
        if reason.len() > MAX_REASON_BYTES {
            let mut cut = MAX_REASON_BYTES;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
            reason.push('…');
        }
        let mut headers = FieldTable::default();
        headers.insert(REASON_HEADER.into(), AMQPValue::LongString(reason.as_str().into()));
        if let Some(j) = &job {
            headers.insert(JOB_ID_HEADER.into(), AMQPValue::LongString(j.as_str().into()));
        }
        let mut props = BasicProperties::default().with_delivery_mode(2).with_headers(headers);
        if let Some(id) = &self.message_id {
            props = props.with_message_id(id.as_str().into());
        }
        let job_label = job.clone().unwrap_or_else(|| "(unknown)".into());
        let confirm = match self
            .dl_channel
            .basic_publish(
                self.dl_exchange.as_str().into(),
                self.routing_key.as_str().into(),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                &self.body,
                props,
            )
            .await
        {
            Ok(c) => c.await,
            Err(e) => Err(e),
        };
        match confirm {
            Ok(Confirmation::Ack(None)) => {}
            Ok(Confirmation::Ack(Some(_))) => {
                return Err(QueueError::Unroutable { job: job_label, queue: format!("{} (dead letters)", self.dl_exchange) })
            }
            Ok(Confirmation::Nack(_)) => return Err(QueueError::Nacked { job: job_label }),
            Ok(Confirmation::NotRequested) => {
                return Err(QueueError::Publish { job: job_label, reason: "dead-letter channel not in confirm mode".into() })
            }
            // The copy may or may not have arrived; the original stays unacked
            // and comes back, and is dead-lettered again then (the coordinator
            // records failures idempotently).
            Err(e) if channel_gone(&e) => return Ok(false),
            Err(e) => return Err(QueueError::Publish { job: job_label, reason: e.to_string() }),
        }
        self.ack().await
    }
}

fn header<'a>(props: &'a BasicProperties, key: &str) -> Option<&'a AMQPValue> {
    props.headers().as_ref()?.inner().iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
}

fn value_str(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

fn value_u64(v: &AMQPValue) -> Option<u64> {
    match *v {
        AMQPValue::ShortShortInt(n) => u64::try_from(n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(n.into()),
        AMQPValue::ShortInt(n) => u64::try_from(n).ok(),
        AMQPValue::ShortUInt(n) => Some(n.into()),
        AMQPValue::LongInt(n) => u64::try_from(n).ok(),
        AMQPValue::LongUInt(n) => Some(n.into()),
        AMQPValue::LongLongInt(n) => u64::try_from(n).ok(),
        _ => None,
    }
}

fn header_str(props: &BasicProperties, key: &str) -> Option<String> {
    header(props, key).and_then(value_str)
}

fn header_u64(props: &BasicProperties, key: &str) -> Option<u64> {
    header(props, key).and_then(value_u64)
}

/// Why a message sits in the dead-letter queue: our own header if a worker put
/// it there, else the broker's `x-death` record. The broker does not carry
/// the delivery count over (the copy's `x-delivery-count` is the dead-letter
/// queue's own), so a delivery-limit death is reported as `delivery_limit + 1`
/// deliveries, which is what the quorum queue allows before dead-lettering.
fn dead_letter_reason(props: &BasicProperties, delivery_limit: u32) -> String {
    if let Some(r) = header_str(props, REASON_HEADER) {
        return r;
    }
    let death = match header(props, "x-death") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().iter().find_map(|v| match v {
            AMQPValue::FieldTable(t) => Some(t.clone()),
            _ => None,
        }),
        _ => None,
    };
    let Some(death) = death else {
        return "dead-lettered without a reason (no x-mll-reason or x-death header)".into();
    };
    let get = |k: &str| death.inner().iter().find(|(key, _)| key.as_str() == k).map(|(_, v)| v.clone());
    let why = get("reason").as_ref().and_then(value_str).unwrap_or_else(|| "unknown".into());
    let queue = get("queue").as_ref().and_then(value_str).unwrap_or_default();
    match why.as_str() {
        "delivery_limit" => {
            format!("delivery limit exceeded: delivered {} times (the job may crash or hang its worker)", u64::from(delivery_limit) + 1)
        }
        "rejected" => format!("rejected without requeue from queue '{queue}'"),
        "expired" => format!("expired in queue '{queue}'"),
        "maxlen" => format!("dropped by the length limit of queue '{queue}'"),
        other => format!("dead-lettered by the broker from queue '{queue}': {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        for (attempt, ceiling) in [(1, 100), (2, 200), (10, 5000), (40, 5000)] {
            let d = backoff(attempt, 5000);
            assert!(d >= Duration::from_millis(ceiling / 2) && d <= Duration::from_millis(ceiling), "{attempt}: {d:?}");
        }
    }

    #[test]
    fn uri_gets_heartbeat_and_timeout_unless_set() {
        let mut s = crate::config::Settings::defaults().broker;
        let u = connection_uri(&s).unwrap();
        assert!(u.contains("heartbeat=30") && u.contains("connection_timeout=10000"), "{u}");
        assert!(u.contains("/%2f"), "the vhost stays encoded: {u}");
        s.url = "amqps://u:p@h:5671/%2f?heartbeat=5".into();
        let u = connection_uri(&s).unwrap();
        assert!(u.contains("heartbeat=5") && !u.contains("heartbeat=30"), "{u}");
    }

    #[test]
    fn reasons_from_headers() {
        let mut h = FieldTable::default();
        h.insert(REASON_HEADER.into(), AMQPValue::LongString("bad payload".into()));
        assert_eq!(dead_letter_reason(&BasicProperties::default().with_headers(h), 5), "bad payload");

        let mut death = FieldTable::default();
        death.insert("reason".into(), AMQPValue::LongString("delivery_limit".into()));
        death.insert("queue".into(), AMQPValue::LongString("q".into()));
        let mut h = FieldTable::default();
        h.insert("x-death".into(), AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into()));
        h.insert("x-delivery-count".into(), AMQPValue::LongLongInt(0));
        let r = dead_letter_reason(&BasicProperties::default().with_headers(h), 5);
        assert!(r.starts_with("delivery limit exceeded: delivered 6 times"), "{r}");
        assert!(dead_letter_reason(&BasicProperties::default(), 5).contains("without a reason"));
    }
}
