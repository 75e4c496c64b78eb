//! Request collapsing: concurrent misses for one key make one origin request. The
//! first becomes the leader and fetches; the others wait until the leader's fill
//! ends (stored, found uncacheable, or failed) and then look again: a stored object
//! is a hit, a hit-for-pass mark sends them to the origin at once, and a failure
//! makes the next of them the leader.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The fetches in flight, by key.
#[derive(Default, Debug)]
pub struct Flights(Arc<Mutex<HashMap<Arc<str>, watch::Receiver<()>>>>);

/// A request's place in a flight.
pub enum Joined {
    /// It fetches; the others wait until this is dropped.
    Leader(Lead),
    /// It waits for the leader: the receiver's `changed()` returns (with an error)
    /// when the leader is done.
    Follower(watch::Receiver<()>),
}

/// The leader's hold on its key: waiters are released when it is dropped.
#[derive(Debug)]
pub struct Lead {
    flights: Arc<Mutex<HashMap<Arc<str>, watch::Receiver<()>>>>,
    key: Arc<str>,
    tx: Option<watch::Sender<()>>,
}

impl Flights {
    /// Join the flight for `key`, or lead a new one.
    pub fn join(&self, key: &Arc<str>) -> Joined {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = map.get(key) {
            return Joined::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(());
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

/// Wait until the leader is done (or `timeout` passes). True when it is done.
pub async fn wait(mut rx: watch::Receiver<()>, timeout: std::time::Duration) -> bool {
    // `changed` fails once the sender is gone: that is the leader finishing.
    tokio::time::timeout(timeout, rx.changed()).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_wake_when_the_leader_is_done_and_the_next_one_leads() {
        let flights = Flights::default();
        let key: Arc<str> = Arc::from("k");
        let Joined::Leader(lead) = flights.join(&key) else {
            panic!("the first request leads");
        };
        let Joined::Follower(rx) = flights.join(&key) else {
            panic!("the second follows");
        };
        let waiting = tokio::spawn(wait(rx, std::time::Duration::from_secs(5)));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(lead);
        assert!(waiting.await.expect("join"));
        assert!(flights.is_empty());
        assert!(matches!(flights.join(&key), Joined::Leader(_)));
    }

    #[tokio::test]
    async fn a_follower_gives_up_after_its_timeout() {
        let flights = Flights::default();
        let key: Arc<str> = Arc::from("k");
        let _lead = flights.join(&key);
        let Joined::Follower(rx) = flights.join(&key) else {
            panic!("the second follows");
        };
        assert!(!wait(rx, std::time::Duration::from_millis(10)).await);
    }
}
