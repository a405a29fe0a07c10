import ExampleLedger
import Foundation
import Logging
import PostgresNIO
import SlipwayPostgres

extension Evidence {
    /// The shared PostgreSQL hop record's rows for the run's slips, read with SQL of our own on one connection.
    static func readPostgres(
        _ url: String, slipIDs: [String]
    ) async throws -> (records: [HopRecordRow], redelivered: Int, most: Int) {
        try await withPostgres(url) { connection, logger in
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
            return (records, counts.redelivered, counts.most)
        }
    }

    /// The warehouse reserve-stock keeps in the shared record: the run's slips' reservations, and the whole stock
    /// (which earlier runs on the same database reserved from too: it adds up over all the reservations).
    static func readPostgresWarehouse(_ url: String, slipIDs: [String]) async throws -> Warehouse {
        try await withPostgres(url) { connection, logger in
            var warehouse = Warehouse(source: "PostgreSQL")
            let rows = try await connection.query(
                """
                SELECT slip_id, COUNT(*)::INT8, SUM(released)::INT8, COUNT(*) FILTER (WHERE released = 0)::INT8
                FROM reservation WHERE slip_id = ANY(\(slipIDs)) GROUP BY 1
                """, logger: logger)
            for try await (slipID, made, releases, inForce) in rows.decode((String, Int, Int, Int).self) {
                warehouse.reservations[slipID] = .init(made: made, releases: releases, inForce: inForce)
            }
            let stock = try await connection.query(
                """
                SELECT sku, available::INT8,
                    (SELECT COALESCE(SUM(quantity), 0) FROM reservation r WHERE r.sku = s.sku AND released = 0)::INT8
                FROM stock s ORDER BY sku
                """, logger: logger)
            for try await (sku, available, reserved) in stock.decode((String, Int, Int).self) {
                warehouse.stock.append(Stock(source: "PostgreSQL", sku: sku, available: available, reservedInForce: reserved))
            }
            return warehouse
        }
    }

    /// One connection to the store for `body`, closed after it; any error names the store.
    private static func withPostgres<T: Sendable>(
        _ url: String, _ body: (PostgresConnection, Logger) async throws -> T
    ) async throws -> T {
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
            let result = try await body(connection, logger)
            try await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw ChaosError("cannot read the hop record at \(store.redacted): \(String(reflecting: error))")
        }
    }
}
