import Foundation

/// A temporary directory removed by `remove()`.
public struct TempDir: Sendable {
    public let path: String

    public init() throws {
        path = NSTemporaryDirectory() + "credits-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A clock tests move by hand.
public final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var nowMs: Int64

    public init(startMs: Int64 = 0) { nowMs = startMs }

    public var now: Int64 { lock.withLock { nowMs } }

    public func advance(ms: Int64) { lock.withLock { nowMs += ms } }
}
