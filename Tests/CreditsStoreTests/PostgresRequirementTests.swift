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

