//! ConnectorActor: owns one ERP connection. It hands each item to a task of its own
//! (one attempt, see [`super::attempt`]) and each ordered run to a task that works
//! through it behind the runs routed before it. What must survive a restart — the
//! connection's gate, claims and pacer — lives in [`Connection`], not in the actor.

use super::Ctx;
use super::attempt;
use super::connection::Connection;
use super::delivery::{Delivery, Disposition};
use super::supervisor::ChildSpec;
use super::visibility::return_behind;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;

pub enum ConnectorMsg {
    /// One item, worked on beside the others (up to the connection's limit).
    Process(Box<Delivery>),
    /// A connection's messages from one receive of a queue that keeps group order, in
    /// that order: worked on one after the other, so the ERP creates them in queue order.
    /// When one goes back to the queue (a retry, a busy connection), the rest go back
    /// with it, unattempted, to come again behind it.
    ProcessInOrder(Vec<Delivery>),
}

pub struct ConnectorActor;

pub struct ConnectorState {
    ctx: Arc<Ctx>,
    conn: Arc<Connection>,
}

impl Actor for ConnectorActor {
    type Msg = ConnectorMsg;
    type State = ConnectorState;
    type Arguments = (Arc<Ctx>, Arc<Connection>);

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        (ctx, conn): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(ConnectorState { ctx, conn })
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (ctx, conn) = (state.ctx.clone(), state.conn.clone());
        let abandon = ctx.abandon.clone();
        match msg {
            ConnectorMsg::Process(delivery) => state.ctx.tasks.spawn(async move {
                tokio::select! {
                    // Abandoned work leaves its message to reappear after the visibility timeout.
                    _ = abandon.cancelled() => {}
                    _ = attempt::process(&ctx, &conn, *delivery) => {}
                }
            }),
            ConnectorMsg::ProcessInOrder(run) => {
                let ticket = conn.turnstile().ticket();
                state.ctx.tasks.spawn(async move {
                    tokio::select! {
                        _ = abandon.cancelled() => {}
                        _ = in_order(&ctx, &conn, ticket, run) => {}
                    }
                })
            }
        };
        Ok(())
    }
}

/// Works through a run of deliveries one by one, after the runs routed before it (see
/// [`ConnectorMsg::ProcessInOrder`]).
async fn in_order(ctx: &Ctx, conn: &Connection, ticket: u64, run: Vec<Delivery>) {
    let turnstile = conn.turnstile();
    let _turn = turnstile.turn(ticket).await;
    let mut run = run.into_iter();
    if let Some(left) = turnstile.held() {
        return_behind(ctx, run, left).await;
        return;
    }
    while let Some(delivery) = run.next() {
        let Disposition::Returned(delay) = attempt::process(ctx, conn, delivery).await else { continue };
        // The rest become visible no sooner than the one that went back, and the queue
        // then hands the group out in order again. SQS counts visibility in whole
        // seconds, rounded up: so does the hold.
        let hold = std::time::Duration::from_secs(delay.as_secs() + u64::from(delay.subsec_nanos() > 0));
        turnstile.hold(hold);
        return_behind(ctx, run, delay).await;
        return;
    }
}

pub fn specs(ctx: &Arc<Ctx>) -> Vec<ChildSpec> {
    ctx.connectors
        .values()
        .map(|conn| {
            let name = ctx.name(&format!("connector.{}", conn.config.id));
            let (c, s, n) = (ctx.clone(), conn.clone(), name.clone());
            ChildSpec {
                name,
                kind: "connector",
                start: Arc::new(move |parent| {
                    let (c, s, n) = (c.clone(), s.clone(), n.clone());
                    Box::pin(async move {
                        Ok(Actor::spawn_linked(Some(n), ConnectorActor, (c, s), parent).await?.0.get_cell())
                    })
                }),
            }
        })
        .collect()
}
