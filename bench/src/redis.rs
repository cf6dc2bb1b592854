//! Redis for a run: a private `redis-server`, or this run's keys deleted from a shared
//! one.

use colloquy_bench::process::{Probe, ServerCommand, ServerProcess};
use colloquy_bench::BenchError;

use crate::servers::RunContext;

/// Starts a private `redis-server` on a free port, without persistence.
pub(crate) async fn start(ctx: &RunContext<'_>) -> Result<ServerProcess, BenchError> {
    let dir = ctx.logs().join("redis");
    std::fs::create_dir_all(&dir).map_err(BenchError::io("creating the Redis directory"))?;
    let args = [
        "--port",
        "{port}",
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
    ]
    .map(str::to_owned)
    .into_iter()
    .chain([dir.display().to_string()])
    .collect();
    let command = ServerCommand {
        name: "redis".to_owned(),
        program: ctx.args.redis_server.clone(),
        args,
        env: Vec::new(),
        probe: Probe::RedisPing,
    };
    ServerProcess::start(&command, ctx.logs()).await
}

/// Deletes this run's keys (`*{prefix}*`) from a shared Redis with `redis-cli`;
/// returns a note saying what happened.
pub(crate) fn delete_keys(url: &str, prefix: &str) -> String {
    let pattern = format!("*{prefix}*");
    let scan = std::process::Command::new("redis-cli")
        .args(["-u", url, "--scan", "--pattern", &pattern])
        .output();
    let keys: Vec<String> = match scan {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => {
            return format!(
                "- Could not list this run's Redis keys (`{pattern}`): delete them by hand."
            )
        }
    };
    let mut deleted = 0;
    for batch in keys.chunks(500) {
        let status = std::process::Command::new("redis-cli")
            .args(["-u", url, "UNLINK"])
            .args(batch)
            .stdout(std::process::Stdio::null())
            .status();
        if status.is_ok_and(|s| s.success()) {
            deleted += batch.len();
        }
    }
    format!(
        "- Deleted {deleted} of {} Redis keys matching `{pattern}` from the shared Redis.",
        keys.len()
    )
}
