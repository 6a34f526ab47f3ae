/// A credit package a creator can buy (SEED.md "Credit Packages").
public struct CreditPackage: Sendable, Codable, Equatable {
    public var id: String
    /// Credits paid for.
    public var credits: Int64
    /// Credits added free on top.
    public var bonusCredits: Int64
    public var priceCents: Int64

    public init(id: String, credits: Int64, bonusCredits: Int64, priceCents: Int64) {
        self.id = id
        self.credits = credits
        self.bonusCredits = bonusCredits
        self.priceCents = priceCents
    }

    public var totalCredits: Int64 { credits + bonusCredits }
}

/// A priced item: an upload type (charged per file) or a feature (charged once per request).
public struct PricedItem: Sendable, Codable, Equatable {
    public var id: String
    public var credits: Int64

    public init(id: String, credits: Int64) {
        self.id = id
        self.credits = credits
    }
}

public struct BatchDiscount: Sendable, Codable, Equatable {
    /// Requests with at least this many files get the discount.
    public var minFiles: Int
    /// Percent off the total, rounded down in credits: `floor(total * percent / 100)`.
    public var percent: Int64

    public init(minFiles: Int, percent: Int64) {
        self.minFiles = minFiles
        self.percent = percent
    }
}

/// Everything that has a price. Defaults are SEED.md's; a JSON file can replace them.
public struct Catalog: Sendable, Codable, Equatable {
    public var packages: [CreditPackage]
    public var uploadTypes: [PricedItem]
    public var features: [PricedItem]
    public var milestones: [PricedItem]
    public var batchDiscount: BatchDiscount

    public init(
        packages: [CreditPackage], uploadTypes: [PricedItem], features: [PricedItem],
        milestones: [PricedItem], batchDiscount: BatchDiscount
    ) {
        self.packages = packages
        self.uploadTypes = uploadTypes
        self.features = features
        self.milestones = milestones
        self.batchDiscount = batchDiscount
    }

    /// SEED.md's numbers.
    public static let `default` = Catalog(
        packages: [
            CreditPackage(id: "starter", credits: 100, bonusCredits: 0, priceCents: 500),
            CreditPackage(id: "creator", credits: 500, bonusCredits: 50, priceCents: 2000),
            CreditPackage(id: "pro", credits: 2000, bonusCredits: 300, priceCents: 6000),
        ],
        uploadTypes: [
            PricedItem(id: "audio", credits: 15),
            PricedItem(id: "video", credits: 50),
            PricedItem(id: "album", credits: 40),
        ],
        features: [
            PricedItem(id: "premium_encryption", credits: 10),
            PricedItem(id: "quality_variants", credits: 5),
            PricedItem(id: "custom_thumbnail", credits: 3),
        ],
        milestones: [
            PricedItem(id: "plays_1k", credits: 25),
            PricedItem(id: "followers_5k", credits: 50),
            PricedItem(id: "first_creator_coin", credits: 100),
        ],
        batchDiscount: BatchDiscount(minFiles: 5, percent: 15)
    )

    public func package(_ id: String) -> CreditPackage? { packages.first { $0.id == id } }
    public func uploadType(_ id: String) -> PricedItem? { uploadTypes.first { $0.id == id } }
    public func feature(_ id: String) -> PricedItem? { features.first { $0.id == id } }
    public func milestone(_ id: String) -> PricedItem? { milestones.first { $0.id == id } }

    /// The package to suggest when a creator is `shortfall` credits short: the cheapest whose
    /// credits (bonus included) cover the shortfall, or the largest when none does.
    public func suggestedPackage(shortfall: Int64) -> CreditPackage {
        precondition(!packages.isEmpty, "a validated catalog has packages")
        let covering = packages.filter { $0.totalCredits >= shortfall }
        if let cheapest = covering.min(by: { ($0.priceCents, $0.totalCredits) < ($1.priceCents, $1.totalCredits) }) {
            return cheapest
        }
        return packages.max(by: { $0.totalCredits < $1.totalCredits })!
    }

    /// Checks every field; the error names the first bad one (`packages[1].priceCents`).
    public func validate() throws(CreditsError) {
        if packages.isEmpty { throw .validation("packages", "the catalog needs at least one package") }
        if uploadTypes.isEmpty { throw .validation("uploadTypes", "the catalog needs at least one upload type") }
        try Self.checkIds(packages.map(\.id), list: "packages")
        try Self.checkIds(uploadTypes.map(\.id), list: "uploadTypes")
        try Self.checkIds(features.map(\.id), list: "features")
        try Self.checkIds(milestones.map(\.id), list: "milestones")
        for (i, p) in packages.enumerated() {
            try Self.checkCredits(p.credits, field: "packages[\(i)].credits", allowZero: false)
            try Self.checkCredits(p.bonusCredits, field: "packages[\(i)].bonusCredits", allowZero: true)
            if p.priceCents <= 0 || p.priceCents > Limits.catalogPriceCentsMax {
                throw .validation("packages[\(i)].priceCents", "must be between 1 and \(Limits.catalogPriceCentsMax) cents")
            }
        }
        for (i, t) in uploadTypes.enumerated() {
            try Self.checkCredits(t.credits, field: "uploadTypes[\(i)].credits", allowZero: false)
        }
        for (i, f) in features.enumerated() {
            try Self.checkCredits(f.credits, field: "features[\(i)].credits", allowZero: true)
        }
        for (i, m) in milestones.enumerated() {
            try Self.checkCredits(m.credits, field: "milestones[\(i)].credits", allowZero: false)
        }
        if batchDiscount.minFiles < 2 || batchDiscount.minFiles > Limits.fileCountMax {
            throw .validation("batchDiscount.minFiles", "must be between 2 and \(Limits.fileCountMax)")
        }
        if batchDiscount.percent < 0 || batchDiscount.percent > 100 {
            throw .validation("batchDiscount.percent", "must be between 0 and 100")
        }
    }

    private static func checkIds(_ ids: [String], list: String) throws(CreditsError) {
        var seen = Set<String>()
        for (i, id) in ids.enumerated() {
            if !Identifier.isValid(id) {
                throw .validation("\(list)[\(i)].id", "must be 1-\(Limits.identifierLengthMax) characters of a-z, A-Z, 0-9, _ . : @ -")
            }
            if !seen.insert(id).inserted { throw .validation("\(list)[\(i)].id", "duplicate id '\(id)'") }
        }
    }

    private static func checkCredits(_ credits: Int64, field: String, allowZero: Bool) throws(CreditsError) {
        let low: Int64 = allowZero ? 0 : 1
        if credits < low || credits > Limits.catalogCreditsMax {
            throw .validation(field, "must be between \(low) and \(Limits.catalogCreditsMax) credits")
        }
    }
}

/// The shape every identifier (user id, upload id, payment id, idempotency key) must have.
public enum Identifier {
    public static func isValid(_ s: String) -> Bool {
        let utf8 = s.utf8
        guard !utf8.isEmpty, utf8.count <= Limits.identifierLengthMax else { return false }
        return utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == 0x5F || c == 0x2E || c == 0x3A || c == 0x40 || c == 0x2D
        }
    }

    public static func check(_ s: String, field: String) throws(CreditsError) {
        if !isValid(s) {
            throw .validation(field, "must be 1-\(Limits.identifierLengthMax) characters of a-z, A-Z, 0-9, _ . : @ -")
        }
    }
}
