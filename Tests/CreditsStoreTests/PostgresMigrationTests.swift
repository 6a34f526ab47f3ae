import CreditsCore
@testable import CreditsStore
import CreditsTestSupport
import Testing

/// Migrations take an advisory lock per schema: instances starting together on one schema
/// migrate it once, and the tests' many schemas of one database do not wait for each other.
@Suite(.enabled(if: PostgresTestDatabase.url != nil)) struct PostgresMigrationTests {
    /// Six stores open at once on one fresh schema. Without the lock some of them fail to open
    /// (two migrators create the same table); with it, every one opens, every migration is
    /// recorded, and all six work on the same tables.
    @Test func storesOpenedTogetherOnOneFreshSchemaMigrateItOnce() async throws {
        let url = try await PostgresTestDatabase.freshSchemaURL()
        let stores = try await withThrowingTaskGroup(of: PostgresStore.self) { group in
            for _ in 0..<6 { group.addTask { try await PostgresStore(url: url) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        try await stores[0].unsafeExecute("""
            DO $$ BEGIN
              IF (SELECT count(*) FROM schema_migrations) <> \(PostgresSchema.migrations.count) THEN
                RAISE EXCEPTION 'not every migration recorded';
              END IF;
            END $$
            """)
        _ = try await stores[0].execute(.adjust(AdjustmentRequest(userId: "u", credits: 7, adjustmentId: "a", reason: "test")),
                                        idempotencyKey: nil)
        for store in stores {
            #expect(try await store.balance(userId: "u").balance == 7)
            try await store.close()
        }
    }

    /// Opened with `create: false` (the tools that read a ledger), a schema without the ledger's
    /// tables is refused, and left without them; a search_path naming no schema is refused by
    /// name (PostgreSQL alone says only "no schema has been selected to create in"); a ledger
    /// opens.
    @Test func aSchemaWithoutALedgerIsRefusedWhenOneMustExist() async throws {
        let url = try await PostgresTestDatabase.freshSchemaURL()
        for _ in 0..<2 {  // the second try finds the schema as the first left it: empty
            do {
                _ = try await PostgresStore(url: url, create: false)
                Issue.record("an empty schema opened as a ledger")
            } catch let error as NoLedgerError {
                #expect(error.description.contains("has no ledger tables"), "\(error)")
            }
        }
        let missing = url.replacingOccurrences(of: "search_path=t_", with: "search_path=gone_")
        for create in [false, true] {
            do {
                _ = try await PostgresStore(url: missing, create: create)
                Issue.record("a missing schema opened")
            } catch let error as PostgresStoreError {
                #expect(error.description.contains("schema gone_") && error.description.contains("does not exist"), "\(error)")
            }
        }
        let store = try await PostgresStore(url: url)  // creates the ledger
        try await store.close()
        let again = try await PostgresStore(url: url, create: false)
        #expect(try await again.reconcile().ok)
        try await again.close()
    }

    @Test func idsPaidForBeforeTheFileKeysAreKeptByTheirMigration() async throws {
        let url = try await PostgresTestDatabase.freshSchemaURL()
        try await FileKeyMigration.run(
            open: { try await PostgresStore(url: url) }, forgetMigration: "DELETE FROM schema_migrations WHERE version = 'v11-file-keys'"
        ) { store, sql in
            try await #require(store as? PostgresStore).unsafeExecute(sql)
        }
    }
}
