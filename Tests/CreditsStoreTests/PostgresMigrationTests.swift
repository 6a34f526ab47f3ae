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

    @Test func idsPaidForBeforeTheFileKeysAreKeptByTheirMigration() async throws {
        let url = try await PostgresTestDatabase.freshSchemaURL()
        try await FileKeyMigration.run(
            open: { try await PostgresStore(url: url) }, forgetMigration: "DELETE FROM schema_migrations WHERE version = 'v11-file-keys'"
        ) { store, sql in
            try await #require(store as? PostgresStore).unsafeExecute(sql)
        }
    }
}
