#if canImport(Glibc)
import Glibc
#endif

/// Each connection holds a file descriptor, and the soft limit on open files is often 1,024 while
/// the hard limit is far higher: at the soft limit the server can accept no one, and SQLite can
/// open no file. `serve` raises the soft limit to the hard one, as Go's runtime does, and logs both.
enum ProcessLimits {
    /// The limits after raising; nil where they cannot be read.
    static func raiseOpenFiles() -> (soft: UInt64, hard: UInt64)? {
        #if canImport(Glibc)
        var limit = rlimit()
        guard getrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(RLIMIT_NOFILE_VALUE, &raised) == 0 { limit = raised }
        }
        return (UInt64(limit.rlim_cur), UInt64(limit.rlim_max))
        #else
        return nil
        #endif
    }

    #if canImport(Glibc)
    private static let RLIMIT_NOFILE_VALUE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #endif
}
