import CreditsCore

/// SQL for uploads that both stores run as is (placeholders differ: `?` or `$n`, filled in by each).
enum UploadQueries {
    static let columns = """
        upload_id, user_id, file_type, file_count, features, size_bytes, priority, status, credits_reserved,
        credits_charged, batch_id, failure_reason, attempts, created_at, updated_at, sponsored
        """

    /// The lifecycle moves the worker may make without touching balances.
    static func checkMark(_ status: UploadRecord.Status) {
        precondition(!status.isSettled, "confirmed and refunded are set by the ledger's capture and release")
    }

    static func record(
        uploadId: String, userId: String, fileType: String, fileCount: Int64, features: String, sizeBytes: Int64,
        priority: String, status: String, creditsReserved: Int64, creditsCharged: Int64, batchId: String?,
        failureReason: String?, attempts: Int64, createdAt: Int64, updatedAt: Int64, sponsored: Bool
    ) -> UploadRecord {
        var record = UploadRecord(
            uploadId: uploadId, userId: userId, fileType: fileType, fileCount: Int(fileCount),
            features: features.isEmpty ? [] : features.split(separator: ",").map(String.init), sizeBytes: sizeBytes,
            priority: UploadPriority(rawValue: priority) ?? .medium, status: UploadRecord.Status(rawValue: status) ?? .failed,
            creditsReserved: creditsReserved, creditsCharged: creditsCharged, batchId: batchId, failureReason: failureReason,
            attempts: Int(attempts), createdAtMs: createdAt, updatedAtMs: updatedAt)
        record.sponsored = sponsored
        return record
    }
}

enum GasQueries {
    static let columns = """
        id, batch_id, message_cid, upload_ids, gas_limit, gas_used, base_fee, premium, fee_cap, total_cost,
        individual_cost, immediate_cost, status, attempt, failure_reason, created_at, updated_at
        """

    static func record(
        id: String, batchId: String, messageCid: String, uploadIds: String, gasLimit: Int64, gasUsed: Int64,
        baseFee: String, premium: String, feeCap: String, totalCost: String, individualCost: String,
        immediateCost: String, status: String, attempt: Int64, failureReason: String?, createdAt: Int64, updatedAt: Int64
    ) -> GasTransaction {
        GasTransaction(
            id: id, batchId: batchId, messageCid: messageCid,
            uploadIds: uploadIds.isEmpty ? [] : uploadIds.split(separator: ",").map(String.init), gasLimit: gasLimit,
            gasUsed: gasUsed, baseFee: Int128(baseFee) ?? 0, premium: Int128(premium) ?? 0, feeCap: Int128(feeCap) ?? 0,
            totalCost: Int128(totalCost) ?? 0, individualCost: Int128(individualCost) ?? 0,
            immediateCost: Int128(immediateCost) ?? 0, status: GasTransaction.Status(rawValue: status) ?? .failed,
            attempt: Int(attempt), failureReason: failureReason, createdAtMs: createdAt, updatedAtMs: updatedAt)
    }
}
