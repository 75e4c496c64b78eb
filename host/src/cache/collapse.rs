//! Request collapsing: concurrent misses for one key make one origin request. The
//! first becomes the leader and fetches. The others wait: as soon as the leader's
//! response is found storable it is published as a [`Tee`], and they are served
//! from it as it streams; otherwise they wait until
//! the leader is done and look again: a stored object is a hit, a hit-for-pass
//! mark sends them to the origin at once, and a failure makes the next of them the
//! leader.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::tee::Tee;

/// What a flight's waiters watch: the leader's stream, once published.
type Published = Option<Arc<Tee>>;
type Map = Arc<Mutex<HashMap<Arc<str>, watch::Receiver<Published>>>>;

/// The fetches in flight, by key.
#[derive(Default)]
pub struct Flights(Map);

impl std::fmt::Debug for Flights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights").field("len", &self.len()).finish()
    }
}

/// A request's place in a flight.
pub enum Joined {
    /// It fetches; the others wait until this is dropped.
    Leader(Lead),
    /// It waits for the leader ([`wait`]).
    Follower(watch::Receiver<Published>),
}

/// The leader's hold on its key: waiters are released when it is dropped.
pub struct Lead {
    flights: Map,
    key: Arc<str>,
    tx: Option<watch::Sender<Published>>,
}

impl Lead {
    /// Serve the waiters from `tee` as it streams.
    pub fn publish(&self, tee: Arc<Tee>) {
        if let Some(tx) = &self.tx {
            tx.send_replace(Some(tee));
        }
    }
}

/// How a wait ended.
pub enum Waited {
    /// The leader's response streams: serve it.
    Streaming(Arc<Tee>),
    /// The leader is done: look again.
    Done,
    /// The leader is slow: go alone.
    TimedOut,
}

impl Flights {
    /// Join the flight for `key`, or lead a new one.
    pub fn join(&self, key: &Arc<str>) -> Joined {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = map.get(key) {
            return Joined::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key.clone(), rx);
        Joined::Leader(Lead {
            flights: self.0.clone(),
            key: key.clone(),
            tx: Some(tx),
        })
    }

    /// Keys being fetched now.
    pub fn len(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether nothing is being fetched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        let mut map = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&self.key);
        drop(map);
        // Dropping the sender wakes every waiter.
        self.tx.take();
    }
}

/// Wait until the leader publishes its stream or is done, or `timeout` passes.
pub async fn wait(mut rx: watch::Receiver<Published>, timeout: std::time::Duration) -> Waited {
    let waiting = async {
        loop {
            if let Some(tee) = rx.borrow_and_update().clone() {
                return Waited::Streaming(tee);
            }
            // `changed` fails once the sender is gone: the leader is done.
            if rx.changed().await.is_err() {
                return match rx.borrow().clone() {
                    Some(tee) => Waited::Streaming(tee),
                    None => Waited::Done,
                };
            }
        }
    };
    tokio::time::timeout(timeout, waiting)
        .await
        .unwrap_or(Waited::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flight for one key: its leader and one follower.
    fn flight() -> (Flights, Lead, watch::Receiver<Published>) {
        let flights = Flights::default();
        let key: Arc<str> = Arc::from("k");
        let Joined::Leader(lead) = flights.join(&key) else {
            panic!("the first request leads");
        };
        let Joined::Follower(rx) = flights.join(&key) else {
            panic!("the second follows");
        };
        (flights, lead, rx)
    }

    #[tokio::test]
    async fn followers_wake_when_the_leader_is_done_and_the_next_one_leads() {
        let (flights, lead, rx) = flight();
        let waiting = tokio::spawn(wait(rx, std::time::Duration::from_secs(5)));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(lead);
        assert!(matches!(waiting.await.expect("join"), Waited::Done));
        assert!(flights.is_empty());
        assert!(matches!(flights.join(&Arc::from("k")), Joined::Leader(_)));
    }

    #[tokio::test]
    async fn a_follower_gives_up_after_its_timeout() {
        let (_flights, _lead, rx) = flight();
        assert!(matches!(
            wait(rx, std::time::Duration::from_millis(10)).await,
            Waited::TimedOut
        ));
    }

    #[tokio::test]
    async fn followers_stream_what_the_leader_publishes() {
        let (_flights, lead, rx) = flight();
        let waiting = tokio::spawn(wait(rx, std::time::Duration::from_secs(5)));
        let headers = http::HeaderMap::new();
        lead.publish(Tee::new(
            http::StatusCode::OK,
            headers,
            String::new(),
            Some(0),
        ));
        assert!(matches!(waiting.await.expect("join"), Waited::Streaming(_)));
    }
}
