import Testing
@testable import Warehouse

/// BigQuery's REST values read exactly, in both forms the emulator and the service use.
@Suite struct BigQueryCellTests {
    @Test func numericStringsAreReadExactlyWhenWhole() throws {
        #expect(try BigQueryCell.integer("250.000000000", type: "NUMERIC") == 250)
        #expect(try BigQueryCell.integer("-1250", type: "BIGNUMERIC") == -1250)
        #expect(try BigQueryCell.integer("9007199254740993", type: "NUMERIC") == 9_007_199_254_740_993)  // not a Double
        #expect(try BigQueryCell.integer("42", type: "INT64") == 42)
        #expect(throws: BigQueryCell.BadValue.self) { try BigQueryCell.integer("2.500000000", type: "NUMERIC") }
        #expect(throws: BigQueryCell.BadValue.self) { try BigQueryCell.integer("1e3", type: "NUMERIC") }
        #expect(throws: BigQueryCell.BadValue.self) { try BigQueryCell.integer("12", type: "STRING") }
    }

    @Test func timestampsAsMicrosecondsOrFloatSeconds() throws {
        // bqemulator: integer microseconds; BigQuery: float seconds, often in E notation.
        #expect(try BigQueryCell.timestampMicros("1767261600000000") == 1_767_261_600_000_000)
        #expect(try BigQueryCell.timestampMicros("1.7672616E9") == 1_767_261_600_000_000)
        #expect(try BigQueryCell.timestampMicros("1767261600.25") == 1_767_261_600_250_000)
        #expect(try BigQueryCell.timestampMicros("1.767261600123456E9") == 1_767_261_600_123_456)
        #expect(try BigQueryCell.timestampMicros("-1.5") == -1_500_000)
        #expect(throws: BigQueryCell.BadValue.self) { try BigQueryCell.timestampMicros("2026-01-01T10:00:00Z") }
    }

    @Test func datesAreISO() throws {
        #expect(try BigQueryCell.date("2026-01-31") == "2026-01-31")
        #expect(throws: BigQueryCell.BadValue.self) { try BigQueryCell.date("2026-1-31") }
    }
}
