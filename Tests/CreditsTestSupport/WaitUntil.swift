/// Polls `condition` every `everyMs` until it holds, at most `polls` times: a bound for a test
/// that would otherwise hang on a broken behaviour, not a timing assertion (the test asserts
/// the condition itself afterwards). Returns whether it held.
@discardableResult
public func waitUntil(polls: Int = 5_000, everyMs: Int = 2, _ condition: () async throws -> Bool) async rethrows -> Bool {
    for _ in 0..<polls {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(everyMs))
    }
    return try await condition()
}
