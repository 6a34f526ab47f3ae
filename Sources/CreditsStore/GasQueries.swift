import CreditsCore

/// Columns and row mapping of `filecoin_gas_transactions`, shared by both stores.
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
