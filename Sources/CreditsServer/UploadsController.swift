import CreditsCore
import CreditsStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore

/// `/api/uploads`: queue an upload (its estimate is held) and read its state (API.md).
struct UploadsController {
    let manager: CreditManager

    struct UploadBody: Decodable {
        var uploadId: String
        var userId: String
        var fileType: String
        var fileCount: Int?
        var features: [String]?
        var sizeBytes: Int64
        var priority: String?
    }

    struct UploadView: Encodable {
        var uploadId: String
        var userId: String
        var status: String
        var sponsored: Bool
        var fileType: String
        var fileCount: Int
        var features: [String]
        var sizeBytes: Int64
        var priority: String
        var creditsReserved: Int64
        var creditsCharged: Int64
        var batchId: String?
        var failureReason: String?
        var attempts: Int
        var createdAt: String
        var updatedAt: String

        init(_ r: UploadRecord) {
            uploadId = r.uploadId
            userId = r.userId
            status = r.status.rawValue
            sponsored = r.sponsored
            fileType = r.fileType
            fileCount = r.fileCount
            features = r.features
            sizeBytes = r.sizeBytes
            priority = r.priority.rawValue
            creditsReserved = r.creditsReserved
            creditsCharged = r.creditsCharged
            batchId = r.batchId
            failureReason = r.failureReason
            attempts = r.attempts
            createdAt = Timestamp.iso8601(ms: r.createdAtMs)
            updatedAt = Timestamp.iso8601(ms: r.updatedAtMs)
        }
    }

    func addRoutes(to group: RouterGroup<BasicRequestContext>) {
        group.post { request, _ in
            let body = try await JSONResponse.decode(UploadBody.self, from: request)
            let priority: UploadPriority
            if let raw = body.priority {
                guard let p = UploadPriority(rawValue: raw) else {
                    throw CreditsError.validation("priority", "must be one of: low, medium, high")
                }
                priority = p
            } else {
                priority = .medium
            }
            let upload = UploadRequest(
                uploadId: body.uploadId, userId: body.userId, fileType: body.fileType, fileCount: body.fileCount ?? 1,
                features: body.features ?? [], sizeBytes: body.sizeBytes, priority: priority)
            let result = try await manager.store.execute(.upload(upload), idempotencyKey: request.headers[.idempotencyKey])
            return try LedgerResponse.make(result)
        }
        group.get("{uploadId}") { _, context in
            let uploadId = try context.parameters.require("uploadId")
            guard let record = try await manager.store.upload(uploadId: uploadId) else {
                throw CreditsError(.notFound, "no upload '\(uploadId)'")
            }
            return try JSONResponse.make(.ok, UploadView(record))
        }
    }
}
