#if canImport(Glibc)
import Glibc
#endif

/// glibc's allocator hands freed memory back to the kernel as soon as an arena's free top passes
/// its trim threshold (128 KiB by default), and the next batch faults it in again: the SQLite
/// writer's transactions allocate and free a few MiB each, and that churn (madvise, page faults,
/// heap growth) took about a sixth of the writer thread in `credits bench`. Keeping up to 64 MiB
/// per arena and growing the heap 16 MiB at a time trades that for a slightly larger resident
/// size. Called first by `serve` and `bench`; a no-op off glibc.
enum MemoryTuning {
    static func apply() {
        #if canImport(Glibc)
        // malloc.h is not in Swift's Glibc module: look mallopt up (glibc always has it).
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(nil, "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        let trimThreshold: Int32 = -1, topPad: Int32 = -2, mmapThreshold: Int32 = -3  // M_* in malloc.h
        _ = mallopt(trimThreshold, 64 << 20)
        _ = mallopt(topPad, 16 << 20)
        _ = mallopt(mmapThreshold, 32 << 20)
        #endif
    }
}
