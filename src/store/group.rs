//! Group writes: many tasks' small writes of one kind done as one transaction. Each
//! task queues its item; whoever finds no group running (up to `leaders` at once)
//! takes what is queued and runs it as one group, while new items queue for the next.
//! Nothing waits on a timer: under light load a group is one item, under heavy load it
//! is what piled up during the previous group. Used for fetched pages (one commit per
//! group) and for rate budgets (one lock of a provider app's budget per group, instead
//! of one per request, each holding a pooled connection while it waits).

use std::future::Future;

use tokio::sync::{oneshot, Semaphore};

/// An item waiting for its group, with where its result goes.
type Queued<T, R> = (T, oneshot::Sender<Result<R, String>>);

pub(crate) struct Group<T, R> {
    queue: std::sync::Mutex<Vec<Queued<T, R>>>,
    leaders: Semaphore,
}

impl<T, R> Group<T, R> {
    pub(crate) fn new(leaders: usize) -> Group<T, R> {
        Group {
            queue: std::sync::Mutex::new(Vec::new()),
            leaders: Semaphore::new(leaders.max(1)),
        }
    }

    /// A leader's place, for work of the same kind done outside a group (held until
    /// dropped): it runs beside no more groups than leaders may.
    pub(crate) async fn place(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.leaders.acquire().await.expect("never closed")
    }

    /// Runs `item` in a group: queues it and, when no other leader has taken it by the
    /// time a leader's place is free, leads a group of the queued items (the first
    /// `limit(queued)` of them) through `run`, which answers each item, in order. A
    /// leader whose own item did not fit in its group leads again or waits for it.
    pub(crate) async fn run<F, Fut>(
        &self,
        item: T,
        limit: impl Fn(&[Queued<T, R>]) -> usize,
        run: F,
    ) -> Result<R, String>
    where
        F: Fn(Vec<T>) -> Fut,
        Fut: Future<Output = Vec<Result<R, String>>>,
    {
        let (tx, mut rx) = oneshot::channel();
        self.queue.lock().unwrap().push((item, tx));
        loop {
            tokio::select! {
                biased;
                r = &mut rx => return r.unwrap_or_else(|_| Err("the group dropped the item".into())),
                permit = self.leaders.acquire() => {
                    let permit = permit.expect("never closed");
                    let batch: Vec<Queued<T, R>> = {
                        let mut q = self.queue.lock().unwrap();
                        let n = limit(&q).max(1).min(q.len());
                        q.drain(..n).collect()
                    };
                    if batch.is_empty() {
                        // Another leader took this item; its answer is on the way.
                        drop(permit);
                        return rx.await.unwrap_or_else(|_| Err("the group dropped the item".into()));
                    }
                    let (items, replies): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
                    let results = run(items).await;
                    // The next group may start while this one's answers go out.
                    drop(permit);
                    let mut results = results.into_iter();
                    for reply in replies {
                        let r = results
                            .next()
                            .unwrap_or_else(|| Err("the group gave no answer".into()));
                        let _ = reply.send(r);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn items_queued_during_a_group_run_together_in_the_next_and_each_gets_its_answer() {
        let group: Arc<Group<u32, u32>> = Arc::new(Group::new(1));
        let groups = Arc::new(AtomicUsize::new(0));
        let (hold_tx, hold_rx) = tokio::sync::oneshot::channel::<()>();
        let hold = Arc::new(tokio::sync::Mutex::new(Some(hold_rx)));
        // The first item leads a group that waits until released.
        let first = {
            let (group, groups, hold) = (group.clone(), groups.clone(), hold.clone());
            tokio::spawn(async move {
                group
                    .run(
                        1,
                        |q| q.len(),
                        |items| {
                            let (groups, hold) = (groups.clone(), hold.clone());
                            async move {
                                groups.fetch_add(1, Ordering::SeqCst);
                                if let Some(rx) = hold.lock().await.take() {
                                    let _ = rx.await;
                                }
                                items.into_iter().map(|i| Ok(i * 10)).collect()
                            }
                        },
                    )
                    .await
            })
        };
        tokio::task::yield_now().await;
        while groups.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (2..=5)
            .map(|i| {
                let (group, groups) = (group.clone(), groups.clone());
                tokio::spawn(async move {
                    group
                        .run(
                            i,
                            |q| q.len(),
                            |items| {
                                let groups = groups.clone();
                                async move {
                                    groups.fetch_add(1, Ordering::SeqCst);
                                    items.into_iter().map(|i| Ok(i * 10)).collect()
                                }
                            },
                        )
                        .await
                })
            })
            .collect();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        hold_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(10));
        for (i, t) in rest.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), Ok((i as u32 + 2) * 10));
        }
        assert_eq!(
            groups.load(Ordering::SeqCst),
            2,
            "the four waiting ran as one group"
        );
    }

    #[tokio::test]
    async fn a_limit_splits_what_is_queued_and_nothing_is_left_behind() {
        let group: Arc<Group<u32, u32>> = Arc::new(Group::new(1));
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let group = group.clone();
                tokio::spawn(async move {
                    group
                        .run(
                            i,
                            |_| 3,
                            |items| async move {
                                assert!(items.len() <= 3);
                                items.into_iter().map(|i| Ok(i + 1)).collect()
                            },
                        )
                        .await
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), Ok(i as u32 + 1));
        }
    }
}
