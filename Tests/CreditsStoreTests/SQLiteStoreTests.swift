import CreditsTestSupport
import CreditsCore
import CreditsStore
import Foundation
import GRDB
import Testing

/// SQLite-only properties: durability settings and persistence across reopening.
@Suite struct SQLiteStoreTests {
    /// GRDB's DatabasePool sets synchronous=NORMAL on its writer; the store must put FULL back,
    /// or a power cut could lose acknowledged commits.
    @Test func writerIsInWALModeWithSynchronousFull() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let store = try SQLiteStore(path: dir.path + "/a.sqlite")
        let settings = try store.durabilitySettings()
        #expect(settings.synchronous == 2)
        #expect(settings.journalMode == "wal")
        // Still FULL after writes went through the group-commit writer.
        _ = try await store.execute(adjust("u", 5, "a"), idempotencyKey: nil)
        #expect(try store.durabilitySettings().synchronous == 2)
        try await store.close()
    }

    @Test func everythingSurvivesReopening() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path + "/a.sqlite"
        let first = try SQLiteStore(path: path)
        let bought = try await first.execute(purchase("u", "creator", "pi_1"), idempotencyKey: "key")
        try await first.close()

        let second = try SQLiteStore(path: path)
        #expect(try await second.balance(userId: "u").balance == 550)
        let replay = try await second.execute(purchase("u", "creator", "pi_1"), idempotencyKey: "key")
        #expect(replay.replayed && replay.outcome == bought.outcome)
        #expect(try await second.reconcile().ok)
        try await second.close()
    }

    @Test func closedStoreRefusesNewWork() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let store = try SQLiteStore(path: dir.path + "/a.sqlite")
        try await store.close()
        await #expect(throws: (any Error).self) { try await store.execute(adjust("u", 5, "a"), idempotencyKey: nil) }
    }
}
