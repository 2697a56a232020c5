//! Lists processes with their memory and CPU use, like a small `top`.
fn main() {
    let mut sys = sysinfo::System::new_all();
    sys.refresh_all();
    let mut procs: Vec<_> = sys.processes().values().collect();
    procs.sort_by_key(|p| std::cmp::Reverse(p.memory()));
    for p in procs.iter().take(20) {
        println!(
            "{:>8} {:>12} {:>6.1} {}",
            p.pid(),
            p.memory(),
            p.cpu_usage(),
            p.name().to_string_lossy()
        );
    }
}
