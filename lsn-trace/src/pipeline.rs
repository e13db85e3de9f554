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
    stream::exec::{Exec, Fork},
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
    /// A process exec()ed (the audit's exec capture, delivered before the events of the
    /// batch it precedes): who it is from then on. Not an event: no output shows it.
    fn exec(&mut self, _exec: &Exec) {}
    /// A new process was forked (same capture, same order): whom it was forked from.
    fn fork(&mut self, _fork: &Fork) {}
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

    fn exec(&mut self, exec: &Exec) {
        self.0.iter_mut().for_each(|s| s.exec(exec))
    }

    fn fork(&mut self, fork: &Fork) {
        self.0.iter_mut().for_each(|s| s.fork(fork))
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
        // Interfaces by the names of the event's own namespace (where it is another).
        crate::netif::rendering_with(note.ifnames.as_ref(), || self.sink.event(ev, &note))
    }

    pub fn lost(&mut self, count: u64, reason: &str) -> io::Result<()> {
        say!("lsn-trace: {count} events lost ({reason})");
        self.sink.lost(count, reason)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }

    /// An exec capture, to the sinks only (the story has nothing to do with it).
    pub fn exec(&mut self, exec: &Exec) {
        self.sink.exec(exec)
    }

    /// A fork capture, likewise.
    pub fn fork(&mut self, fork: &Fork) {
        self.sink.fork(fork)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::{Kind, Request, SOCK_STREAM, Sock},
        sockaddr::{AF_INET, SockAddr},
        story::ListenerChange,
    };

    /// Writes down what it is given; fails on the `fail_at`th event.
    #[derive(Default)]
    struct Recorder {
        seen: Vec<(Kind, Option<ListenerChange>)>,
        lost: Vec<u64>,
        flushes: u32,
        fail_at: Option<usize>,
    }

    impl Sink for Recorder {
        fn event(&mut self, ev: &Event, note: &Note) -> io::Result<()> {
            if self.fail_at == Some(self.seen.len()) {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.seen.push((ev.kind, note.listener));
            Ok(())
        }
        fn lost(&mut self, count: u64, _reason: &str) -> io::Result<()> {
            self.lost.push(count);
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.flushes += 1;
            Ok(())
        }
    }

    fn ev(kind: Kind, request: Request) -> Event {
        Event {
            euid: None,
            state_unknown: None,
            kind,
            time_ns: 0,
            pid: 0x3fff_fff0,
            tid: 0x3fff_fff0,
            ppid: None,
            uid: 0,
            gid: 0,
            comm: "t".into(),
            fd: Some(3),
            errno: 0,
            source: crate::event::Source::Syscall,
            request,
            sock: Some(Sock {
                family: Some(AF_INET),
                sock_type: Some(SOCK_STREAM),
                protocol: Some(6),
                local: Some(std::net::Ipv4Addr::LOCALHOST.into()),
                port: Some(8080),
                ..Sock::default()
            }),
            sock_id: Some(1),
            followed: false,
            start: None,
            raw: Default::default(),
        }
    }

    /// Every sink of a tee gets every event with the one story's note, in order; the
    /// first error stops the event there and is the pipeline's.
    #[test]
    fn a_tee_feeds_every_sink_the_same_notes() {
        let (mut a, mut b) = (Recorder::default(), Recorder::default());
        let mut tee = Tee(vec![&mut a, &mut b]);
        let mut p = Pipeline::new(&mut tee);
        let bind = ev(
            Kind::Bind,
            Request::Bind(SockAddr::Inet {
                addr: std::net::Ipv4Addr::LOCALHOST,
                port: 8080,
            }),
        );
        let listen = ev(Kind::Listen, Request::Listen { backlog: Some(4) });
        for e in [&bind, &listen, &listen, &ev(Kind::Close, Request::None)] {
            p.event(e).unwrap();
        }
        p.lost(7, "test").unwrap();
        p.flush().unwrap();
        drop(p);
        drop(tee);
        let want = [
            (Kind::Bind, None),
            (Kind::Listen, Some(ListenerChange::Open)),
            (Kind::Listen, None),
            (Kind::Close, Some(ListenerChange::Close)),
        ];
        assert_eq!(a.seen, want);
        assert_eq!(b.seen, want);
        assert_eq!((a.lost, b.lost), (vec![7], vec![7]));
        assert_eq!((a.flushes, b.flushes), (1, 1));

        let mut first = Recorder {
            fail_at: Some(0),
            ..Recorder::default()
        };
        let mut second = Recorder::default();
        let mut tee = Tee(vec![&mut first, &mut second]);
        let err = Pipeline::new(&mut tee).event(&bind).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        drop(tee);
        assert!(second.seen.is_empty());
    }
}
