import CreditsCore
@testable import CreditsStore
import CreditsTestSupport
import Foundation
import GRDB
import Testing

/// A database written before payments had facts (schema v6) migrates to v7 with its purchases
/// intact, reconciles, and takes provider events for them.
@Suite struct SQLiteMigrationTests {
    /// Opened with `create: false`, a missing file is refused and not created, and a SQLite file
    /// that is not a ledger is refused and left as it was (no tables added, its journal mode
    /// kept); a ledger opens.
    @Test func aFileWithoutALedgerIsRefusedWhenOneMustExist() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let missing = dir.path + "/typo.sqlite"
        #expect(throws: NoLedgerError.self) { _ = try SQLiteStore(path: missing, create: false) }
        #expect(!FileManager.default.fileExists(atPath: missing))
        let other = dir.path + "/other.db"
        do {
            let queue = try DatabaseQueue(path: other)
            try await queue.write { db in try db.execute(sql: "CREATE TABLE notes (body TEXT)") }
            try queue.close()
        }
        #expect(throws: NoLedgerError.self) { _ = try SQLiteStore(path: other, create: false) }
        let queue = try DatabaseQueue(path: other)
        let (tables, mode) = try await queue.read { db in
            (try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"),
             try String.fetchOne(db, sql: "PRAGMA journal_mode"))
        }
        try queue.close()
        #expect(tables == ["notes"] && mode == "delete")
        let text = dir.path + "/notes.txt"
        FileManager.default.createFile(atPath: text, contents: Data("not a database".utf8))
        #expect(throws: NoLedgerError.self) { _ = try SQLiteStore(path: text, create: false) }
        let ledger = dir.path + "/ledger.sqlite"
        try await SQLiteStore(path: ledger).close()
        let opened = try SQLiteStore(path: ledger, create: false)
        #expect(try await opened.reconcile().ok)
        try await opened.close()
    }

    @Test func v6PurchasesSurviveThePaymentsMigration() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path + "/old.sqlite"
        do {
            // The v6 tables, filled as the v6 writer filled them for one creator purchase.
            let queue = try DatabaseQueue(path: path)
            try SQLiteSchema.migrator.migrate(queue, upTo: "v6-sponsored-uploads-table")
            try await queue.write { db in
                try db.execute(sql: """
                    INSERT INTO user_credits VALUES ('old_u', 550, 0, 0, 0, 550, 1, 1);
                    UPDATE platform_accounts SET balance = -500 WHERE name = 'sales';
                    UPDATE platform_accounts SET balance = -50 WHERE name = 'promotions';
                    INSERT INTO credit_transactions VALUES (1, 'purchase', 'old_u', 'platform:sales', 'user:old_u', 500, -500, 500, 'purchase:stripe:pi_old', '', 1);
                    INSERT INTO credit_transactions VALUES (2, 'purchase_bonus', 'old_u', 'platform:promotions', 'user:old_u', 50, -50, 550, 'purchase:stripe:pi_old', '', 1);
                    INSERT INTO credit_purchases VALUES (1, 'old_u', 'creator', 'stripe', 'pi_old', 550, 500, 50, 2000, 'completed', 1, 1);
                    """)
            }
            try queue.close()
        }
        let store = try SQLiteStore(path: path)
        let before = try await store.reconcile()
        #expect(before.ok, "\(before.problems)")
        let refund = try await store.execute(.paymentEvent(PaymentEventRequest(
            paymentMethod: .stripe, eventId: "evt_old", paymentId: "pi_old", kind: .refunded, refundedCents: 500)), idempotencyKey: nil)
        guard case .paymentEvent(let r) = refund.outcome else { Issue.record("\(refund)"); return }
        #expect(r.purchaseId == "pur_1" && r.creditsChange == -137 && r.balance == 413)
        let after = try await store.reconcile()
        #expect(after.ok, "\(after.problems)")
        try await store.close()
    }

    @Test func idsPaidForBeforeTheFileKeysAreKeptByTheirMigration() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path + "/ledger.sqlite"
        try await FileKeyMigration.run(
            open: { try SQLiteStore(path: path) }, forgetMigration: "DELETE FROM grdb_migrations WHERE identifier = 'v11-file-keys'"
        ) { _, sql in
            let queue = try DatabaseQueue(path: path)
            try await queue.write { try $0.execute(sql: sql) }
            try queue.close()
        }
    }
}
