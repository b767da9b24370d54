use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Context, Handler, Message, Supervised};

use super::*;

/// A supervised actor that counts its restarts.
struct Probe {
    restarted: Arc<AtomicU32>,
}

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Supervised for Probe {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarted.fetch_add(1, Ordering::SeqCst);
    }
}

crate::supervised_actor!(Probe);

#[derive(Message)]
#[rtype(result = "u32")]
struct Restarts;

impl Handler<Restarts> for Probe {
    type Result = u32;

    fn handle(&mut self, _: Restarts, _: &mut Context<Self>) -> u32 {
        self.restarted.load(Ordering::SeqCst)
    }
}

type Escalations = Arc<Mutex<Vec<(&'static str, RestartReason)>>>;

fn supervision(config: SupervisionConfig) -> (Supervision, Escalations) {
    let escalations: Escalations = Arc::default();
    let seen = escalations.clone();
    let escalate: Escalation = Arc::new(move |actor, reason| seen.lock().expect("lock").push((actor, reason)));
    (Supervision::new(config, escalate), escalations)
}

fn probe(supervision: &Supervision) -> Addr<Probe> {
    supervision.start("probe", |_| Probe {
        restarted: Arc::default(),
    })
}

#[actix_rt::test]
async fn a_panicking_handler_is_restarted_at_the_same_address_and_others_keep_serving() {
    let (supervision, escalations) = supervision(SupervisionConfig::default());
    let (victim, bystander) = (probe(&supervision), probe(&supervision));
    for round in 1..=3 {
        let answer = victim.send(InjectFault::Panic).await;
        assert!(answer.is_err(), "the panicking handler never answers");
        assert_eq!(victim.send(Restarts).await.expect("restarted"), round);
        assert_eq!(bystander.send(Restarts).await.expect("untouched"), 0);
    }
    assert!(escalations.lock().expect("lock").is_empty());
}

#[actix_rt::test]
async fn a_stopped_actor_is_restarted() {
    let (supervision, _) = supervision(SupervisionConfig::default());
    let actor = probe(&supervision);
    actor.send(InjectFault::Stop).await.expect("stops after answering");
    assert_eq!(actor.send(Restarts).await.expect("restarted"), 1);
}

#[actix_rt::test]
async fn a_stalled_mailbox_is_detected_and_the_actor_restarted() {
    let (supervision, _) = supervision(SupervisionConfig {
        stuck_after_ms: 200,
        ..SupervisionConfig::default()
    });
    let actor = probe(&supervision);
    actor.do_send(InjectFault::Stall);
    // Queued behind the stall: answered only once the guardian restarts it.
    let answer = tokio::time::timeout(Duration::from_secs(10), actor.send(Restarts)).await;
    assert_eq!(answer.expect("answered after the restart").expect("alive"), 1);
}

#[actix_rt::test]
async fn too_many_restarts_escalate_instead_of_looping() {
    let (supervision, escalations) = supervision(SupervisionConfig {
        max_restarts: 2,
        within_secs: 60,
        ..SupervisionConfig::default()
    });
    let actor = probe(&supervision);
    for _ in 0..2 {
        let _ = actor.send(InjectFault::Panic).await;
    }
    assert_eq!(actor.send(Restarts).await.expect("two restarts allowed"), 2);
    assert!(escalations.lock().expect("lock").is_empty());
    let _ = actor.send(InjectFault::Panic).await;
    assert_eq!(
        escalations.lock().expect("lock").as_slice(),
        &[("probe", RestartReason::Panic)]
    );
    assert!(actor.send(Restarts).await.is_err(), "not restarted a third time");
}

#[test]
fn panic_messages_are_read_from_either_payload_type() {
    let text: Box<dyn Any + Send> = Box::new("static");
    let owned: Box<dyn Any + Send> = Box::new(String::from("owned"));
    let other: Box<dyn Any + Send> = Box::new(7_u8);
    assert_eq!(panic_message(&*text), "static");
    assert_eq!(panic_message(&*owned), "owned");
    assert_eq!(panic_message(&*other), "(not a string)");
}
