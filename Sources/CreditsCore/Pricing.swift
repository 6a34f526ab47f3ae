/// What an upload request asks to be priced (SEED.md "Upload Cost Estimation").
public struct EstimateRequest: Sendable, Codable, Equatable {
    public var fileType: String
    public var fileCount: Int
    public var features: [String]

    public init(fileType: String, fileCount: Int = 1, features: [String] = []) {
        self.fileType = fileType
        self.fileCount = fileCount
        self.features = features
    }
}

/// A priced upload. `credits = baseCredits + featureCredits - discountCredits`.
public struct Estimate: Sendable, Codable, Equatable {
    public var fileType: String
    public var fileCount: Int
    public var features: [String]
    /// Per-file price × file count.
    public var baseCredits: Int64
    /// Features, charged once per request (the seed's worked example: 3 audio + 2 features = 45 + 15).
    public var featureCredits: Int64
    /// `floor((base + features) × percent / 100)` when `fileCount >= minFiles`, else 0.
    public var discountCredits: Int64
    public var credits: Int64
}

public enum Pricing {
    /// Prices a request against the catalog. Pure; throws a validation error naming the field.
    public static func estimate(_ request: EstimateRequest, catalog: Catalog) throws(CreditsError) -> Estimate {
        guard let type = catalog.uploadType(request.fileType) else {
            let known = catalog.uploadTypes.map(\.id).joined(separator: ", ")
            throw .validation("fileType", "unknown file type '\(request.fileType)'; expected one of: \(known)")
        }
        guard request.fileCount >= 1, request.fileCount <= Limits.fileCountMax else {
            throw .validation("fileCount", "must be between 1 and \(Limits.fileCountMax)")
        }
        if request.features.count > catalog.features.count {
            throw .validation("features", "lists more features than the catalog has")
        }
        var featureCredits: Int64 = 0
        var seen = Set<String>()
        for (i, id) in request.features.enumerated() {
            guard let feature = catalog.feature(id) else {
                let known = catalog.features.map(\.id).joined(separator: ", ")
                throw .validation("features[\(i)]", "unknown feature '\(id)'; expected one of: \(known)")
            }
            if !seen.insert(id).inserted { throw .validation("features[\(i)]", "feature '\(id)' is listed twice") }
            featureCredits += feature.credits
        }
        // Bounded by Limits: catalogCreditsMax × fileCountMax is 1e10, far from Int64's range.
        let baseCredits = type.credits * Int64(request.fileCount)
        let total = baseCredits + featureCredits
        let discount = request.fileCount >= catalog.batchDiscount.minFiles
            ? total * catalog.batchDiscount.percent / 100 : 0
        precondition(discount >= 0 && discount <= total)
        return Estimate(
            fileType: request.fileType, fileCount: request.fileCount, features: request.features,
            baseCredits: baseCredits, featureCredits: featureCredits, discountCredits: discount,
            credits: total - discount)
    }
}
