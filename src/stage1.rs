//! Stage 1: PID 1 of the bootstrapper. TODO(skeleton): filled in by the boot engine.

pub fn run() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
