//! Filter latency per keystroke on 10k and 100k rows (not a test: prints figures).
//!
//! Types a query one character at a time, as a user does, then deletes it again,
//! and reports the median and worst time per keystroke, plus the one-off cost of
//! preparing the rows and of computing highlights for one screen of rows.
//! Lines follow CONVENTIONS.md: `name: value unit (vs reference: …)`.

use std::time::{Duration, Instant};

use ec2ssh::filter::SearchIndex;
use ec2ssh::fleet::{Instance, Ping};

fn fleet(n: usize) -> Vec<Instance> {
    let roles = [
        "web", "api", "db", "cache", "batch", "worker", "bastion", "kafka", "search", "etl",
    ];
    let envs = ["prod", "staging", "dev", "qa"];
    let platforms = [
        "Amazon Linux",
        "Ubuntu",
        "Debian",
        "Red Hat Enterprise Linux",
        "Windows",
    ];
    (0..n)
        .map(|k| Instance {
            id: format!("i-{:017x}", 0x0a1b_2c3d_4e5f_u64.wrapping_mul(k as u64 + 7)),
            region: "us-east-1".into(),
            name: Some(format!(
                "{}-{}-{:04}",
                roles[k % roles.len()],
                envs[(k / 10) % envs.len()],
                k % 9973
            )),
            ping: if k % 5 == 0 {
                Ping::ConnectionLost
            } else {
                Ping::Online
            },
            platform_name: Some(platforms[k % platforms.len()].into()),
            platform_version: Some("22.04".into()),
            private_ip: Some(format!(
                "10.{}.{}.{}",
                k / 65536 % 256,
                k / 256 % 256,
                k % 256
            )),
            instance_type: Some(["t3.micro", "m6i.large", "c7g.xlarge"][k % 3].into()),
            availability_zone: Some(format!("us-east-1{}", ['a', 'b', 'c'][k % 3])),
            ..Default::default()
        })
        .collect()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn bench(n: usize, query: &str, target_ms: f64) {
    let rows = fleet(n);
    let t = Instant::now();
    let mut idx = SearchIndex::new(&rows);
    let prep = t.elapsed();

    let mut typing = Vec::new();
    let mut deleting = Vec::new();
    let mut slowest = (Duration::ZERO, String::new());
    for _ in 0..5 {
        idx.search("");
        let mut q = String::new();
        for c in query.chars() {
            q.push(c);
            let t = Instant::now();
            std::hint::black_box(idx.search(&q).len());
            let took = t.elapsed();
            typing.push(took);
            if took > slowest.0 {
                slowest = (took, q.clone());
            }
        }
        while q.pop().is_some() {
            let t = Instant::now();
            std::hint::black_box(idx.search(&q).len());
            deleting.push(t.elapsed());
        }
    }
    let worst_typing = *typing.iter().max().unwrap();
    let worst_deleting = *deleting.iter().max().unwrap();
    let hits: Vec<u32> = idx.search(query).iter().take(50).map(|h| h.index).collect();
    let t = Instant::now();
    for &i in &hits {
        std::hint::black_box(idx.positions(i, query));
    }
    let highlight = t.elapsed();

    println!("filter_prepare_{n}: {:.2} ms", ms(prep));
    for (what, times, worst) in [
        ("typing", &mut typing, worst_typing),
        ("deleting", &mut deleting, worst_deleting),
    ] {
        println!(
            "filter_keystroke_{what}_{n}: median {:.2} ms, worst {:.2} ms (target: worst <= {target_ms} ms, ratio {:.2}x)",
            ms(median(times)),
            ms(worst),
            ms(worst) / target_ms
        );
    }
    println!(
        "filter_slowest_keystroke_{n}: {:.2} ms typing {:?}",
        ms(slowest.0),
        slowest.1
    );
    println!("filter_highlight_50_rows_{n}: {:.3} ms", ms(highlight));
}

fn main() {
    let query = std::env::args()
        .nth(1)
        .filter(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "web prod 42".into());
    bench(10_000, &query, 2.0);
    bench(100_000, &query, 16.0);
}
