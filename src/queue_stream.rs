//! `QueueStream`: a queue's items as a `futures_core::Stream` (feature `tokio`).

use crate::error::GetError;
use crate::queue::Queue;
use bytemuck::Pod;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, GetError>> + Send + 'a>>;

/// The items of a [`Queue`] as a `Stream` (from [`Queue::stream`]): each item is taken with
/// [`Queue::get_async`]; the stream ends once the queue is closed and drained.
///
/// Several streams (and other getters) on one queue share its items: each item goes to one.
/// Dropping the stream between items loses nothing; dropping it while it waits for an item
/// loses nothing either (see `get_async`'s cancel safety).
pub struct QueueStream<'a, T: Pod + Send + Sync> {
    queue: &'a Queue<T>,
    next: Option<Pending<'a, T>>,
}

impl<T: Pod + Send + Sync> Queue<T> {
    /// The items of this queue as a `futures_core::Stream` (feature `tokio`), ending when the
    /// queue is closed and drained.
    pub fn stream(&self) -> QueueStream<'_, T> {
        QueueStream {
            queue: self,
            next: None,
        }
    }
}

impl<'a, T: Pod + Send + Sync> futures_core::Stream for QueueStream<'a, T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let queue = self.queue;
        let fut = self.next.get_or_insert_with(|| Box::pin(queue.get_async()));
        match fut.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                self.next = None;
                Poll::Ready(r.ok())
            }
        }
    }
}

impl<T: Pod + Send + Sync> std::fmt::Debug for QueueStream<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueStream")
            .field("waiting", &self.next.is_some())
            .finish()
    }
}
