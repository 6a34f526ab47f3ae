import CreditsCore
import CreditsStore
import Foundation
import GRDB
import CreditsTestSupport
import Testing

/// How the conformance suite gets a fresh, empty store of each kind, and how it corrupts one
/// behind the store's back (to prove `reconcile` notices).
struct StoreFactory: Sendable, CustomTestStringConvertible {
    var name: String
    var makeWith: @Sendable (Catalog, SponsorshipRules, WallClock) async throws -> FreshStore

    func make(_ catalog: Catalog, sponsorship: SponsorshipRules = .init(), clock: WallClock = .system) async throws -> FreshStore {
        try await makeWith(catalog, sponsorship, clock)
    }
    var testDescription: String { name }

    /// SQLite always; PostgreSQL when the test command started a cluster.
    static let all: [StoreFactory] = PostgresTestDatabase.url == nil ? [.sqlite] : [.sqlite, .postgres]

    static let sqlite = StoreFactory(name: "SQLite") { catalog, sponsorship, clock in
        let dir = try TempDir()
        let path = dir.path + "/ledger.sqlite"
        let store = try SQLiteStore(path: path, catalog: catalog, clock: clock, sponsorship: sponsorship)
        return FreshStore(store: store, dir: dir) { sql in
            let queue = try DatabaseQueue(path: path)
            try await queue.write { try $0.execute(sql: sql) }
            try queue.close()
        }
    }
}

extension StoreFactory {
    /// Each store gets a schema of its own in the test database, so tests run in parallel.
    static let postgres = StoreFactory(name: "PostgreSQL") { catalog, sponsorship, clock in
        let url = try await PostgresTestDatabase.freshSchemaURL()
        let store = try await PostgresStore(url: url, catalog: catalog, clock: clock, sponsorship: sponsorship)
        return FreshStore(store: store, dir: try TempDir()) { sql in
            // One statement per query in PostgreSQL's extended protocol.
            for statement in sql.split(separator: ";") where !statement.allSatisfy(\.isWhitespace) {
                try await store.unsafeExecute(String(statement))
            }
        }
    }
}

struct FreshStore: Sendable {
    var store: any CreditStore
    var dir: TempDir
    /// Runs raw SQL against the store's database, bypassing the ledger.
    var tamper: @Sendable (String) async throws -> Void

    func close() async throws {
        try await store.close()
        dir.remove()
    }
}

func spend(_ user: String, _ credits: Int64, _ upload: String, _ description: String = "") -> LedgerOperation {
    .spend(SpendRequest(userId: user, credits: credits, fileUploadId: upload, description: description))
}

func purchase(_ user: String, _ package: String, _ paymentId: String, _ method: PaymentMethod = .stripe) -> LedgerOperation {
    .purchase(PurchaseRequest(userId: user, package: package, paymentMethod: method, paymentId: paymentId))
}

func adjust(_ user: String, _ credits: Int64, _ id: String) -> LedgerOperation {
    .adjust(AdjustmentRequest(userId: user, credits: credits, adjustmentId: id, reason: "test"))
}

extension LedgerOutcome {
    var balance: Int64? {
        switch self {
        case .purchased(let r): r.balance
        case .spent(let r): r.balance
        case .adjusted(let r): r.balance
        case .queued(let r): r.balance
        case .settled(let r): r.balance
        case .milestoneGranted(let r): r.balance
        case .sponsoredUpload(let r): r.balance
        case .paymentEvent(let r): r.balance
        case .expired(let r): r.balance
        case .rejected: nil
        }
    }

    var rejection: CreditsError? {
        if case .rejected(let e) = self { return e }
        return nil
    }
}
