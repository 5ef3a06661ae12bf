//! Stage 2: runs inside the target's initramfs. TODO(skeleton): filled in by the boot engine.

pub fn run() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
