//! HTTP body replay under arbitrary chunking, buffer limits and attempts that stop reading
//! midway: never panics, and a replayed body is always the body that was sent, byte for
//! byte (the 64 KiB limit made small so that it is crossed often).

mod support;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use std::convert::Infallible;
use support::Runs;
use tower_retrier::replay::{Replay, ReplayHttp};

type Chunks =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

#[test]
fn replayed_bodies_are_the_bodies_sent() {
    static RUNS: Runs = Runs::new("body_replay");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    bolero::check!().for_each(|bytes: &[u8]| {
        RUNS.one();
        let [limit, first_reads, ref rest @ ..] = *bytes else {
            return;
        };
        // Chunks: each byte below 8 ends a chunk.
        let chunks: Vec<Bytes> = rest.split(|b| *b < 8).map(Bytes::copy_from_slice).collect();
        let whole: Vec<u8> = chunks.iter().flatten().copied().collect();
        let frames: Vec<Result<Frame<Bytes>, Infallible>> =
            chunks.iter().cloned().map(|c| Ok(Frame::data(c))).collect();
        let body: Chunks = StreamBody::new(futures_util::stream::iter(frames));
        let replay = ReplayHttp::new().max_buffer(usize::from(limit));
        let req = http::Request::post("/").body(body).unwrap();
        let Ok((first, mut saved)) = replay.save(req) else {
            return;
        };
        rt.block_on(async {
            // The first attempt reads a few frames, then lets go (or reads everything).
            let mut body = first.into_body();
            let mut sent = Vec::new();
            for _ in 0..first_reads % 8 {
                match body.frame().await {
                    Some(Ok(f)) => sent.extend_from_slice(f.data_ref().map_or(&[][..], |d| d)),
                    _ => break,
                }
            }
            drop(body);
            assert!(whole.starts_with(&sent));
            for _ in 0..2 {
                let Some(again) = replay.replay(&mut saved) else {
                    // Too large for the buffer: sent once, never replayed.
                    return;
                };
                let got = again.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(&got[..], &whole[..]);
            }
        });
    });
    RUNS.report();
}
