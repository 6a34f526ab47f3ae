import Synchronization

/// Something a test runs once, at a moment a wrapper chooses (just before a call reaches the
/// database or the chain): armed with `arm`, run and disarmed by the first `fire`.
final class OneShot: Sendable {
    private let body = Mutex<(@Sendable () async -> Void)?>(nil)

    init(_ body: (@Sendable () async -> Void)? = nil) {
        self.body.withLock { $0 = body }
    }

    func arm(_ body: @escaping @Sendable () async -> Void) { self.body.withLock { $0 = body } }

    func fire() async {
        if let body = body.withLock({ b in defer { b = nil }; return b }) { await body() }
    }
}
