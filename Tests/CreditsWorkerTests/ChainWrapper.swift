import CreditsChain
import CreditsWorker
import Synchronization

/// A test chain around a `SimulatedChain`: every call it does not implement itself goes to
/// `inner` (so `knows` and `baseFees` answer as the simulated chain does, not as the
/// `ChainClient` defaults).
protocol ChainWrapper: ChainClient {
    var inner: SimulatedChain { get }
}

extension ChainWrapper {
    func head() async throws -> ChainHead { try await inner.head() }
    func push(_ message: ChainMessage, recordingFirst record: @Sendable (String) async throws -> Void) async throws -> String {
        try await inner.push(message, recordingFirst: record)
    }
    func knows(cid: String) async throws -> Bool { try await inner.knows(cid: cid) }
    func replace(_ cid: String, with message: ChainMessage) async throws -> String { try await inner.replace(cid, with: message) }
    func receipt(cid: String) async throws -> ChainReceipt? { try await inner.receipt(cid: cid) }
    func baseFees(heights: ClosedRange<Int64>) async throws -> [Int128] { try await inner.baseFees(heights: heights) }
    func forget(cid: String) async { await inner.forget(cid: cid) }
}

/// How long a wrapped call takes on a test's virtual clock: nothing until `set(_:on:)`, then each
/// `pass()` moves that clock on, as a call's round trip does on a wall clock.
final class CallTime: Sendable {
    private let value = Mutex<(clock: VirtualClock, ms: Int64)?>(nil)

    func set(_ ms: Int64, on clock: VirtualClock) { value.withLock { $0 = (clock, ms) } }

    func pass() {
        if let (clock, ms) = value.withLock({ $0 }) { clock.advance(ms: ms) }
    }
}

/// Runs `hook` once, before the first message's push reaches the chain (before its CID is
/// recorded): something that happens while this process is about to send.
final class BeforeFirstPush: ChainWrapper {
    let inner: SimulatedChain
    private let hook: OneShot

    init(_ inner: SimulatedChain, _ hook: @escaping @Sendable () async -> Void) {
        self.inner = inner
        self.hook = OneShot(hook)
    }

    func push(_ message: ChainMessage, recordingFirst record: @Sendable (String) async throws -> Void) async throws -> String {
        await hook.fire()
        return try await inner.push(message, recordingFirst: record)
    }
}
