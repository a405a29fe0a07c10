import Foundation
@testable import Slipway
import Testing

@Suite("Choosing a processor's hop record store")
struct StoreSelectionTests {
    @Test("--store and SLIPWAY_STORE_URL name the store; SQLite in the state directory without either")
    func options() throws {
        #expect(try ProcessorOptions(arguments: [], environment: [:]).storeURL == nil)
        #expect(try ProcessorOptions(arguments: [], environment: ["SLIPWAY_STORE_URL": "postgres://h/d"]).storeURL == "postgres://h/d")
        #expect(
            try ProcessorOptions(arguments: ["--store", "sqlite:/x.sqlite"], environment: ["SLIPWAY_STORE_URL": "postgres://h/d"])
                .storeURL == "sqlite:/x.sqlite")
    }

    @Test("SLIPWAY_STORE_URL_FILE is read, its newline trimmed; errors name the file, never its contents")
    func urlFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("postgres://u:secret@h/d\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(try ProcessorOptions(arguments: [], environment: ["SLIPWAY_STORE_URL_FILE": path]).storeURL == "postgres://u:secret@h/d")
        let both = #expect(throws: ProcessorError.self) {
            try ProcessorOptions(arguments: [], environment: ["SLIPWAY_STORE_URL_FILE": path, "SLIPWAY_STORE_URL": "x:y"])
        }
        #expect(both?.description.contains("unset one") == true)
        try Data("postgres://u:secret@h/d\nmore\n".utf8).write(to: URL(fileURLWithPath: path))
        let twoLines = #expect(throws: ProcessorError.self) {
            try ProcessorOptions(arguments: [], environment: ["SLIPWAY_STORE_URL_FILE": path])
        }
        #expect(twoLines?.description.contains("secret") == false)
    }

    @Test("a URL goes to the factory that claims its scheme; an unknown scheme is refused without the rest of the URL")
    func choose() throws {
        let fake = HopRecordStoreFactory(schemes: ["Postgres", "postgresql"]) { _ in throw ProcessorError("unused") }
        #expect(try HopRecordStoreFactory.choose(for: nil, among: [fake]).schemes == ["sqlite"])
        #expect(try HopRecordStoreFactory.choose(for: "POSTGRES://u:p@h/d", among: [.sqlite, fake]).schemes == ["postgres", "postgresql"])
        let error = #expect(throws: ProcessorError.self) {
            try HopRecordStoreFactory.choose(for: "postgres://u:secret@h/d", among: [.sqlite])
        }
        #expect(error?.description.contains("'postgres'") == true)
        #expect(error?.description.contains("secret") == false)
    }

    @Test("sqlite:PATH opens the SQLite record at PATH")
    func sqliteURL() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)/h.sqlite").path
        let opened = try await HopRecordStoreFactory.sqlite.open(
            .init(url: "sqlite:\(path)", step: "s", keepFor: nil, logger: .init(label: "t")))
        #expect(opened.description == "sqlite:\(path)")
        #expect(FileManager.default.fileExists(atPath: path))
    }
}
