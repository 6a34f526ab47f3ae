import ArgumentParser
import CreditsCore
import CreditsStore
import Foundation
import Logging

/// `--database` and `--catalog`, shared by every subcommand that opens the ledger.
struct StoreOptions: ParsableArguments {
    @Option(help: "SQLite file path (created and migrated on first use) or postgres://user:pass@host:port/db. Default: $CREDITS_DATABASE or ./credits.sqlite")
    var database: String?

    @Option(help: "JSON catalog file replacing the built-in packages and prices.")
    var catalog: String?

    @Option(help: "Days promotional credits (bonuses, milestones, operator grants) live before they expire; paid credits never do.")
    var promotionalExpiryDays: Int64 = 365

    func validate() throws {
        guard (1...36_500).contains(promotionalExpiryDays) else { throw ValidationError("--promotional-expiry-days: 1...36500") }
    }

    var lotRules: LotRules { LotRules(promotionalLifetimeDays: promotionalExpiryDays) }

    var databaseLocation: String {
        database ?? ProcessInfo.processInfo.environment["CREDITS_DATABASE"] ?? "./credits.sqlite"
    }

    func loadCatalog() throws -> Catalog {
        guard let catalog else { return .default }
        return try CatalogFile.load(path: catalog)
    }

    func openStore() async throws -> any CreditStore {
        try await StoreOptions.open(databaseLocation, catalog: loadCatalog(), lots: lotRules)
    }

    /// A SQLite file path or a PostgreSQL URL.
    static func open(_ location: String, catalog: Catalog = .default, lots: LotRules = .init()) async throws -> any CreditStore {
        if location.hasPrefix("postgres://") || location.hasPrefix("postgresql://") {
            var logger = Logger(label: "credits.postgres")
            logger.logLevel = .warning
            return try await PostgresStore(url: location, catalog: catalog, lots: lots, logger: logger)
        }
        return try SQLiteStore(path: location, catalog: catalog, lots: lots)
    }
}

enum CatalogFile {
    /// Reads and validates a catalog; the error names the file and the bad field.
    static func load(path: String) throws -> Catalog {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("catalog file \(path): cannot be read")
        }
        let catalog: Catalog
        do {
            catalog = try JSONDecoder().decode(Catalog.self, from: data)
        } catch let error as DecodingError {
            let e = CreditsError(decoding: error)
            throw ValidationError("catalog file \(path): \(e.field ?? "body") \(e.message)")
        }
        do {
            try catalog.validate()
        } catch {
            throw ValidationError("catalog file \(path): \(error.field ?? "") \(error.message)")
        }
        return catalog
    }
}

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
