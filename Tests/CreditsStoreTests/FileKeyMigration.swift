import CreditsCore
import CreditsStore
import CreditsTestSupport
import Testing

/// A ledger written before `v11-file-keys` (spends, uploads and sponsorships kept under their
/// natural keys) gets the shared `file:` keys when it migrates: what was applied before replays,
/// and an id spent before is refused as an upload after. An id paid for twice before (a spend,
/// then an upload) keeps the first: the spend replays, the upload is refused as another request.
enum FileKeyMigration {
    /// - Parameters:
    ///   - open: opens the store on the one database, migrating it.
    ///   - forgetMigration: SQL that removes the record that `v11-file-keys` ran.
    ///   - sql: runs one SQL statement on the store's database, behind its back.
    static func run(
        open: () async throws -> any CreditStore, forgetMigration: String,
        sql: (any CreditStore, String) async throws -> Void
    ) async throws {
        // v10 kept these operations under their natural keys: `spend:<id>`, `upload:<id>`.
        func keptAsV10Did(_ store: any CreditStore, prefix: String) async throws {
            try await sql(store, "UPDATE idempotency_keys SET key = '\(prefix)' || substr(key, 6) WHERE key LIKE 'file:%'")
        }
        var store = try await open()
        _ = try await store.execute(adjust("u1", 100, "g"), idempotencyKey: nil)
        let spentOld = try await store.execute(spend("u1", 15, "old"), idempotencyKey: nil)
        let spentTwice = try await store.execute(spend("u1", 15, "twice"), idempotencyKey: nil)
        // Before v11 nothing kept "twice" from being queued as an upload as well.
        try await keptAsV10Did(store, prefix: "spend:")
        let queuedTwice = try await store.execute(StoreConformance.audio("twice", files: 1, features: []), idempotencyKey: nil)
        #expect(queuedTwice.outcome.rejection == nil && !queuedTwice.replayed)
        try await keptAsV10Did(store, prefix: "upload:")
        _ = try await store.upsertUser(userId: "sam", walletAddress: nil, signedUpAtMs: nil)
        let sponsoredGiven = try await store.execute(StoreConformance.sponsored("given"), idempotencyKey: nil)
        try await keptAsV10Did(store, prefix: "sponsored:")
        try await sql(store, forgetMigration)
        try await store.close()

        store = try await open()
        try await StoreConformance.expectConflict(store, StoreConformance.audio("old", files: 1, features: []),
                                                  "an upload under an id spent before the migration")
        try await StoreConformance.expectConflict(store, spend("sam", 15, "given"), "a spend under an id sponsored before the migration")
        try await StoreConformance.expectConflict(store, StoreConformance.audio("twice", files: 1, features: []),
                                                  "the second way an id was paid for before the migration")
        for (again, first) in [
            (try await store.execute(spend("u1", 15, "old"), idempotencyKey: nil), spentOld),
            (try await store.execute(spend("u1", 15, "twice"), idempotencyKey: nil), spentTwice),
            (try await store.execute(StoreConformance.sponsored("given"), idempotencyKey: nil), sponsoredGiven),
        ] {
            #expect(again.replayed && again.outcome == first.outcome)
        }
        let b = try await store.balance(userId: "u1")
        #expect((b.balance, b.reserved) == (55, 15))
        #expect(try await store.reconcile().ok)
        try await store.close()
    }
}

/// Two instances on one PostgreSQL database: a spend sent to one and an upload sent to the other
/// under the same id are still one payment (the shared key is claimed in the database).
@Suite(.enabled(if: PostgresTestDatabase.url != nil)) struct FileKeyAcrossInstancesTests {
    @Test func aSpendAndAnUploadUnderOneIdOnTwoInstancesApplyOnce() async throws {
        let url = try await PostgresTestDatabase.freshSchemaURL()
        let first = try await PostgresStore(url: url)
        let second = try await PostgresStore(url: url)
        do {
            try await StoreConformance.raceSpendsAndUploads(spendsOn: first, uploadsOn: second)
        } catch {
            try? await first.close()
            try? await second.close()
            throw error
        }
        try await first.close()
        try await second.close()
    }
}
