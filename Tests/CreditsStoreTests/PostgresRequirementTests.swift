import CreditsCore
import CreditsStore
import CreditsTestSupport
import Foundation
import Testing

/// The PostgreSQL suite is part of every run of the test command, not an optional extra.
@Suite struct PostgresRequirementTests {
    @Test func postgresIsAvailableWhenRequired() {
        if ProcessInfo.processInfo.environment["CREDITS_REQUIRE_POSTGRES"] == "1" {
            #expect(PostgresTestDatabase.url != nil, "CREDITS_REQUIRE_POSTGRES=1 but no CREDITS_TEST_POSTGRES_URL: the PostgreSQL suite cannot run")
            #expect(StoreFactory.all.contains { $0.name == "PostgreSQL" })
        }
    }
}

/// Migrations take an advisory lock per schema: instances starting together on one schema
/// migrate it once, and the tests' many schemas of one database do not wait for each other.
@Suite(.enabled(if: PostgresTestDatabase.url != nil)) struct PostgresMigrationTests {
    @Test func storesOpenedTogetherOnOneFreshSchemaMigrateItOnce() async throws {
        let url = try await PostgresTestDatabase.freshSchemaURL()
        let stores = try await withThrowingTaskGroup(of: PostgresStore.self) { group in
            for _ in 0..<6 { group.addTask { try await PostgresStore(url: url) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(stores.count == 6)
        // Each version once, and the tables work from every store.
        try await stores[0].unsafeExecute("""
            DO $$ BEGIN
              IF (SELECT count(*) FROM schema_migrations) <> (SELECT count(DISTINCT version) FROM schema_migrations) THEN
                RAISE EXCEPTION 'a migration recorded twice';
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
}
