//! What happens to a decoded event: the story makes one `Note` of it (per-socket
//! reconstruction: verdict, listener summary, failure explanation, whether it opens, fails
//! to open or closes a listener), then every sink takes the event and that note.
//!
//! ```text
//! Tracer (ring buffer, decode) → Pipeline: Story::observe → (&Event, &Note) → Sink(s)
//! ```
//!
//! One story per pipeline, so every output says the same thing about a socket, and no sink
//! rebuilds what the story knows. Nothing flows back to the tracer.
use std::io;

use crate::{
    event::Event,
    story::{Note, Story},
};

/// Where events go once the story has taken them in: a renderer on stdout, the audit log,
/// the `-- CMD` summary...
///
/// To add a sink (a metrics exporter, a policy alert): implement this trait on a type that
/// holds your output's state; read what a socket *means* from the `Note` (`note.listener`
/// says whether the event opens, fails to open or closes a listener — the one rule every
/// output uses; `note.bound` the verdict's facts; `note.summary`/`note.explanation` the
/// sentences) and never keep a per-socket table or call the story yourself. Then hand it
/// to the pipeline of the mode that wants it, beside the others through a [`Tee`]
/// (`Pipeline::new(&mut Tee(vec![&mut out, &mut yours]))`). `event` runs on the tracer's
/// thread for every event: keep it to bookkeeping and buffered writes, and write out in
/// `flush`, called once per drained batch.
pub trait Sink {
    /// One event, with what the story made of it.
    fn event(&mut self, ev: &Event, note: &Note) -> io::Result<()>;
    /// `count` events the kernel side could not deliver, and why (already said on stderr
    /// by the pipeline).
    fn lost(&mut self, count: u64, reason: &str) -> io::Result<()>;
    /// End of a batch: write out what is buffered.
    fn flush(&mut self) -> io::Result<()>;
}

/// Several sinks fed the same stream, in order (the first error stops the event there).
pub struct Tee<'a>(pub Vec<&'a mut dyn Sink>);

impl Sink for Tee<'_> {
    fn event(&mut self, ev: &Event, note: &Note) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.event(ev, note))
    }

    fn lost(&mut self, count: u64, reason: &str) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.lost(count, reason))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.flush())
    }
}

/// The stages after the tracer: the one story, then the sink(s).
pub struct Pipeline<'a> {
    story: Story,
    sink: &'a mut dyn Sink,
}

impl<'a> Pipeline<'a> {
    pub fn new(sink: &'a mut dyn Sink) -> Pipeline<'a> {
        Pipeline {
            story: Story::new(),
            sink,
        }
    }

    pub fn event(&mut self, ev: &Event) -> io::Result<()> {
        let note = self.story.observe(ev);
        self.sink.event(ev, &note)
    }

    pub fn lost(&mut self, count: u64, reason: &str) -> io::Result<()> {
        say!("lsn-trace: {count} events lost ({reason})");
        self.sink.lost(count, reason)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}
