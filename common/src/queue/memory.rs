//! In-process queue for the embedded local mode. It keeps the broker's
//! semantics the worker loop relies on: a delivery stays in hand until acked,
//! requeued or dead-lettered; requeued messages count their deliveries; past
//! the delivery limit a message is dead-lettered, as a quorum queue does.
//! Lanes (`lanes`) are separate FIFO queues, each with its consumer count.

use super::{Consumer, DeadLetter, DeadLettered, Delivery, JobQueue, Lane, LaneLoad, Outgoing, QueueError};
use async_trait::async_trait;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

struct Message {
    job_id: String,
    body: Vec<u8>,
    deliveries: u32,
    lane: Option<Lane>,
}

#[derive(Default)]
struct State {
    /// Ready messages per lane (None: the main queue).
    ready: BTreeMap<Option<Lane>, VecDeque<Message>>,
    consumers: BTreeMap<Option<Lane>, u32>,
    dead: Vec<DeadLettered>,
    closed: bool,
}

#[derive(Clone)]
pub struct MemoryQueue {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
    delivery_limit: u32,
}

impl MemoryQueue {
    pub fn new(delivery_limit: u32) -> Self {
        MemoryQueue { state: Arc::default(), notify: Arc::new(Notify::new()), delivery_limit }
    }

    /// Wakes every consumer and makes them return `None` (local mode shutdown).
    pub fn close(&self) {
        self.state.lock().unwrap().closed = true;
        self.notify.notify_waiters();
    }

    fn give_back(&self, msg: Message) {
        let mut st = self.state.lock().unwrap();
        if msg.deliveries > self.delivery_limit {
            st.dead.push(DeadLettered {
                reason: format!("delivery limit exceeded: delivered {} times (the job may crash or hang its worker)", msg.deliveries),
                job_id: Some(msg.job_id),
                body: msg.body,
            });
        } else {
            st.ready.entry(msg.lane.clone()).or_default().push_back(msg);
        }
        drop(st);
        // Every consumer re-checks its own lane.
        self.notify.notify_waiters();
    }
}

struct MemoryDelivery {
    queue: MemoryQueue,
    msg: Mutex<Option<Message>>,
    body: Vec<u8>,
    previous: u32,
}

impl MemoryDelivery {
    fn take(&self) -> Option<Message> {
        self.msg.lock().unwrap().take()
    }
}

impl Drop for MemoryDelivery {
    // A delivery dropped without a verdict goes back, like an unacked message
    // whose channel closed.
    fn drop(&mut self) {
        if let Some(m) = self.take() {
            self.queue.give_back(m);
        }
    }
}

#[async_trait]
impl Delivery for MemoryDelivery {
    fn body(&self) -> &[u8] {
        &self.body
    }
    fn previous_deliveries(&self) -> u32 {
        self.previous
    }
    async fn ack(&self) -> Result<bool, QueueError> {
        Ok(self.take().is_some())
    }
    async fn requeue(&self) -> Result<bool, QueueError> {
        match self.take() {
            Some(m) => {
                self.queue.give_back(m);
                Ok(true)
            }
            None => Ok(false),
        }
    }
    async fn dead_letter(&self, dl: DeadLetter) -> Result<bool, QueueError> {
        match self.take() {
            Some(m) => {
                self.queue.state.lock().unwrap().dead.push(DeadLettered {
                    body: m.body,
                    job_id: dl.job_id.or(Some(m.job_id)),
                    reason: dl.reason,
                });
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

struct MemoryConsumer {
    queue: MemoryQueue,
    lane: Option<Lane>,
    cancelled: bool,
}

impl MemoryConsumer {
    fn new(queue: MemoryQueue, lane: Option<Lane>) -> Self {
        *queue.state.lock().unwrap().consumers.entry(lane.clone()).or_default() += 1;
        MemoryConsumer { queue, lane, cancelled: false }
    }

    fn leave(&mut self) {
        if !self.cancelled {
            let mut st = self.queue.state.lock().unwrap();
            if let Some(n) = st.consumers.get_mut(&self.lane) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        self.leave();
    }
}

#[async_trait]
impl Consumer for MemoryConsumer {
    async fn next(&mut self) -> Option<Result<Box<dyn Delivery>, QueueError>> {
        loop {
            if self.cancelled {
                return None;
            }
            let notified = self.queue.notify.notified();
            {
                let mut st = self.queue.state.lock().unwrap();
                if st.closed {
                    return None;
                }
                if let Some(mut m) = st.ready.get_mut(&self.lane).and_then(VecDeque::pop_front) {
                    let previous = m.deliveries;
                    m.deliveries += 1;
                    let body = m.body.clone();
                    return Some(Ok(Box::new(MemoryDelivery { queue: self.queue.clone(), msg: Mutex::new(Some(m)), body, previous })));
                }
            }
            notified.await;
        }
    }

    async fn cancel(&mut self) -> Result<(), QueueError> {
        self.leave();
        self.cancelled = true;
        Ok(())
    }

    fn lane(&self) -> Option<&Lane> {
        self.lane.as_ref()
    }

    async fn switch_to(&mut self, lane: Option<Lane>) -> Result<(), QueueError> {
        if self.cancelled {
            return Ok(());
        }
        // Nothing is delivered ahead in memory: the move is immediate.
        self.leave();
        *self.queue.state.lock().unwrap().consumers.entry(lane.clone()).or_default() += 1;
        self.lane = lane;
        Ok(())
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn publish(&self, messages: &[Outgoing]) -> Result<(), QueueError> {
        let mut st = self.state.lock().unwrap();
        for m in messages {
            let msg = Message { job_id: m.job_id.clone(), body: m.body.clone(), deliveries: 0, lane: m.lane.clone() };
            st.ready.entry(m.lane.clone()).or_default().push_back(msg);
        }
        drop(st);
        self.notify.notify_waiters();
        Ok(())
    }

    async fn consumer(&self, _tag: &str) -> Result<Box<dyn Consumer>, QueueError> {
        Ok(Box::new(MemoryConsumer::new(self.clone(), None)))
    }

    async fn drain_dead_letters(&self) -> Result<Vec<DeadLettered>, QueueError> {
        Ok(std::mem::take(&mut self.state.lock().unwrap().dead))
    }

    async fn depths(&self, _lanes: &[Lane]) -> Result<(u64, u64), QueueError> {
        let st = self.state.lock().unwrap();
        Ok((st.ready.values().map(|q| q.len() as u64).sum(), st.dead.len() as u64))
    }

    async fn lane_loads(&self, lanes: &[Lane]) -> Result<Vec<LaneLoad>, QueueError> {
        let st = self.state.lock().unwrap();
        let load = |lane: Option<Lane>| {
            let ready = st.ready.get(&lane).map_or(0, |q| q.len() as u64);
            LaneLoad::new(lane.clone(), ready, st.consumers.get(&lane).copied().unwrap_or(0))
        };
        Ok(std::iter::once(None).chain(lanes.iter().cloned().map(Some)).map(load).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(id: &str) -> Outgoing {
        Outgoing { job_id: id.into(), body: id.as_bytes().to_vec(), lane: None }
    }

    #[tokio::test]
    async fn requeue_counts_deliveries_and_limit_dead_letters() {
        let q = MemoryQueue::new(2);
        q.publish(&[out("a")]).await.unwrap();
        let mut c = q.consumer("t").await.unwrap();
        for expected_previous in 0..3 {
            let d = c.next().await.unwrap().unwrap();
            assert_eq!(d.previous_deliveries(), expected_previous);
            assert!(d.requeue().await.unwrap());
        }
        let dead = q.drain_dead_letters().await.unwrap();
        assert_eq!(dead.len(), 1);
        assert!(dead[0].reason.contains("delivery limit"), "{}", dead[0].reason);
        assert_eq!(q.depths(&[]).await.unwrap(), (0, 0));
    }

    #[tokio::test]
    async fn dropped_delivery_goes_back_and_ack_is_final() {
        let q = MemoryQueue::new(5);
        q.publish(&[out("a")]).await.unwrap();
        let mut c = q.consumer("t").await.unwrap();
        drop(c.next().await.unwrap().unwrap());
        let d = c.next().await.unwrap().unwrap();
        assert_eq!(d.previous_deliveries(), 1);
        assert!(d.ack().await.unwrap());
        assert!(!d.ack().await.unwrap());
        assert_eq!(q.depths(&[]).await.unwrap(), (0, 0));
    }

    #[tokio::test]
    async fn lanes_are_separate_queues_with_their_consumers() {
        let q = MemoryQueue::new(5);
        let a = Lane::of_model("a");
        let mut m = out("x");
        m.lane = Some(a.clone());
        q.publish(&[m, out("y")]).await.unwrap();
        let mut c = q.consumer("t").await.unwrap();
        let loads = q.lane_loads(std::slice::from_ref(&a)).await.unwrap();
        assert_eq!((loads[0].ready, loads[0].consumers, loads[1].ready, loads[1].consumers), (1, 1, 1, 0));
        assert_eq!(c.next().await.unwrap().unwrap().body(), b"y", "the main queue's message only");
        c.switch_to(Some(a.clone())).await.unwrap();
        assert_eq!(c.lane(), Some(&a));
        let d = c.next().await.unwrap().unwrap();
        assert_eq!(d.body(), b"x");
        assert!(d.requeue().await.unwrap(), "a requeued lane message goes back to its lane");
        let loads = q.lane_loads(std::slice::from_ref(&a)).await.unwrap();
        assert_eq!((loads[0].consumers, loads[1].ready, loads[1].consumers), (0, 1, 1));
        drop(c);
        assert_eq!(q.lane_loads(&[a]).await.unwrap()[1].consumers, 0);
    }
}
