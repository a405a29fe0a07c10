import Foundation
import Logging
import PostgresNIO
import SlipwayPostgres

extension Evidence {
    /// The shared PostgreSQL hop record's rows for the run's slips, read with SQL of our own on one connection.
    static func readPostgres(
        _ url: String, slipIDs: [String]
    ) async throws -> (records: [HopRecordRow], redelivered: Int, most: Int) {
        let store = try PostgresStoreURL(url)
        var logger = Logger(label: "slipway-chaos.evidence")
        logger.logLevel = .error
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(
                configuration: try store.connectionConfiguration(), id: 1, logger: logger)
        } catch {
            throw ChaosError("cannot read the hop record at \(store.redacted): \(String(reflecting: error))")
        }
        do {
            var records: [HopRecordRow] = []
            let rows = try await connection.query(
                "SELECT slip_id, sequence, step, kind, outcome FROM hop_record WHERE slip_id = ANY(\(slipIDs))",
                logger: logger)
            for try await (slipID, sequence, step, kind, outcome) in rows.decode((String, Int, String, String, String).self) {
                records.append(HopRecordRow(slipID: slipID, sequence: sequence, step: step, kind: kind, outcome: outcome))
            }
            var counts = (redelivered: 0, most: 0)
            let redeliveries = try await connection.query(
                """
                SELECT COALESCE(SUM(count), 0)::INT8, COALESCE(MAX(count), 0)::INT8 FROM hop_redelivery
                WHERE slip_id = ANY(\(slipIDs))
                """, logger: logger)
            for try await row in redeliveries.decode((Int, Int).self) { counts = row }
            try await connection.close()
            return (records, counts.redelivered, counts.most)
        } catch {
            try? await connection.close()
            throw ChaosError("cannot read the hop record at \(store.redacted): \(String(reflecting: error))")
        }
    }
}
