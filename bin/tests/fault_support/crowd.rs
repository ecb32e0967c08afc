//! Many client connections at once that never finish a request: idle ones that send
//! nothing or only a request's opening, and slow ones that trickle their headers a byte
//! at a time.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// How a crowd member behaves once connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Manner {
    /// Sends nothing at all.
    Idle,
    /// Sends a request line, then one header byte every `interval`, never finishing.
    Trickling { interval: Duration },
    /// Sends one whole request, reads the answer, then keeps the connection open, idle.
    KeptAlive,
    /// Sends these bytes (the start of a request), then nothing more.
    Opens(&'static [u8]),
}

/// Raises this process's soft limit on open files to its hard limit, and checks that it
/// allows `needed` descriptors.
pub(crate) fn allow_open_files(needed: u64) {
    let allowed = rlimit::increase_nofile_limit(u64::MAX).expect("raise the open-file limit");
    assert!(
        allowed >= needed,
        "this test needs {needed} open files but the hard limit allows {allowed}: \
         raise it (ulimit -Hn) to run it"
    );
}

/// Opens `count` connections to `address` behaving as `manner`; each task returns how long
/// after it connected the server closed the connection (`None`: still open at `give_up`).
pub(crate) async fn gather(
    address: &str,
    count: usize,
    manner: Manner,
    give_up: Duration,
) -> JoinSet<Option<Duration>> {
    let mut crowd = JoinSet::new();
    for _ in 0..count {
        let stream = TcpStream::connect(address)
            .await
            .expect("open a crowd connection");
        crowd.spawn(behave(stream, manner, give_up));
    }
    crowd
}

async fn behave(mut stream: TcpStream, manner: Manner, give_up: Duration) -> Option<Duration> {
    let connected = Instant::now();
    let deadline = connected + give_up;
    match manner {
        Manner::Idle => {}
        Manner::Opens(opening) => stream.write_all(opening).await.ok()?,
        Manner::Trickling { .. } => {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
                .await
                .ok()?;
        }
        Manner::KeptAlive => {
            let request = b"GET /healthz HTTP/1.1\r\nHost: crowd\r\n\r\n";
            stream.write_all(request).await.ok()?;
            let mut answer = [0u8; 1024];
            let read = stream.read(&mut answer).await.ok()?;
            assert!(
                answer[..read].starts_with(b"HTTP/1.1 200"),
                "a kept-alive connection's request was not answered"
            );
        }
    }

    let mut buf = [0u8; 1024];
    loop {
        let pause = match manner {
            Manner::Trickling { interval } => interval,
            Manner::Idle | Manner::KeptAlive | Manner::Opens(_) => give_up,
        };
        let wake = (Instant::now() + pause).min(deadline);
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Some(connected.elapsed()),
                // A timeout answer (408 or the like) may come before the close.
                Ok(_) => {}
            },
            () = tokio::time::sleep_until(wake.into()) => {
                if Instant::now() >= deadline {
                    return None;
                }
                if stream.write_all(b"x").await.is_err() {
                    return Some(connected.elapsed());
                }
            }
        }
    }
}
