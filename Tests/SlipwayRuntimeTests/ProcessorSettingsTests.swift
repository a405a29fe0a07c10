import Configuration
import Foundation
@testable import Slipway
import Testing

@Suite("A processor's settings: one table, read from the command line, the environment and secrets' files")
struct ProcessorSettingsTests {
    static let secret = "s3cret-Pa55word"

    /// A file holding `text`, removed after `body`.
    func withFile<T>(_ text: String, _ body: (String) throws -> T) throws -> T {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("setting-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return try body(path)
    }

    @Test("an option wins over its variable and over its secret's file; without either, the variable or the file")
    func precedence() throws {
        let store = try withFile("postgres://u:\(Self.secret)@h/d\n") { path in
            (
                flag: try ProcessorOptions(arguments: ["--store", "sqlite:/x"], environment: ["SLIPWAY_STORE_URL_FILE": path]),
                file: try ProcessorOptions(arguments: [], environment: ["SLIPWAY_STORE_URL_FILE": path])
            )
        }
        #expect(store.flag.storeURL == "sqlite:/x")
        #expect(store.file.storeURL == "postgres://u:\(Self.secret)@h/d")
        let prefetch = try ProcessorOptions(arguments: ["--prefetch", "5"], environment: ["SLIPWAY_PREFETCH": "9"])
        #expect(prefetch.prefetch == 5)
        #expect(try ProcessorOptions(arguments: [], environment: ["SLIPWAY_PREFETCH": "9"]).prefetch == 9)
        let last = try ProcessorOptions(arguments: ["--prefetch", "5", "--prefetch", "6"], environment: [:])
        #expect(last.prefetch == 6, "the last of a repeated option wins")
        let list = "amqp://u:p@h1/,amqp://u:p@h2/"
        #expect(try ProcessorOptions(arguments: [], environment: ["SLIPWAY_AMQP_URLS": list]).amqpURL == list)
        #expect(try ProcessorOptions(arguments: ["--amqp-url", "amqp://h3/"], environment: ["SLIPWAY_AMQP_URLS": list]).amqpURL
            == "amqp://h3/")
    }

    @Test("the readers take any providers: here swift-configuration's in-memory one")
    func inMemory() throws {
        let reader = ConfigReader(provider: InMemoryProvider(values: [
            "prefetch": "4", "log.level": "debug", "signing.keys": "k1=0123456789abcdef", "limits.itinerarySteps": "12",
        ]))
        let options = try ProcessorOptions(reader: reader)
        #expect(options.prefetch == 4 && options.logLevel == .debug && options.concurrency == nil)
        #expect(options.signing?.keys.map(\.id) == ["k1"])
        #expect(options.limits.maxItinerarySteps == 12 && options.limits.maxMessageBytes == SlipLimits().maxMessageBytes)
    }

    @Test("a variable and its _FILE set at once are refused, for every secret, naming both and neither's value")
    func variableAndFile() throws {
        for setting in ProcessorSetting.all where setting.secretFile != nil {
            let variable = try #require(setting.environment), file = try #require(setting.fileEnvironment)
            let error = try withFile("x") { path in
                #expect(throws: ProcessorError.self, "\(variable)") {
                    try ProcessorOptions(arguments: [], environment: [variable: Self.secret, file: path])
                }
            }
            #expect(error?.description == "both \(variable) and \(file) are set: unset one")
        }
        #expect(throws: ProcessorError.self, "two names of one setting") {
            try ProcessorOptions(arguments: [], environment: ["SLIPWAY_AMQP_URL": "amqp://a/", "SLIPWAY_AMQP_URLS": "amqp://b/"])
        }
    }

    @Test("a secret's file: its trailing newline trimmed, a list a line per item; errors name the file, never its text")
    func secretFiles() throws {
        let keys = try withFile("k1=0123456789abcdef\nk2=fedcba9876543210\n") { path in
            try SigningKeys.fromEnvironment(["SLIPWAY_SIGNING_KEYS_FILE": path])
        }
        #expect(keys?.keys.map(\.id) == ["k1", "k2"])
        #expect(try SigningKeys.fromEnvironment([:]) == nil)
        let urls = try withFile("amqp://u:p@h1/\namqp://u:p@h2/\n") { path in
            try ProcessorOptions(arguments: [], environment: ["SLIPWAY_AMQP_URLS_FILE": path]).amqpURL
        }
        #expect(urls == "amqp://u:p@h1/,amqp://u:p@h2/")
        let twoLines = try withFile("amqp://u:\(Self.secret)@h/\nmore\n") { path in
            #expect(throws: ProcessorError.self) {
                try ProcessorOptions(arguments: [], environment: ["SLIPWAY_AMQP_URL_FILE": path])
            }
        }
        #expect(twoLines?.description.contains("SLIPWAY_AMQP_URL_FILE") == true)
        #expect(twoLines?.description.contains(Self.secret) == false)
        let missing = #expect(throws: ProcessorError.self) {
            try ProcessorOptions(arguments: [], environment: ["SLIPWAY_STORE_URL_FILE": "/nonexistent/store-url"])
        }
        #expect(missing?.description == "SLIPWAY_STORE_URL_FILE: cannot read '/nonexistent/store-url'")
        let empty = try withFile("\n") { path in
            #expect(throws: ProcessorError.self) {
                try ProcessorOptions(arguments: [], environment: ["SLIPWAY_SIGNING_KEYS_FILE": path])
            }
        }
        #expect(empty?.description.contains("is empty") == true)
    }

    @Test("a bad number is refused naming its setting, from an option or a variable")
    func badNumbers() throws {
        for setting in ProcessorSetting.all where setting.valueName == "N" {
            if let variable = setting.environment {
                let error = #expect(throws: ProcessorError.self, "\(variable)") {
                    try ProcessorOptions(arguments: [], environment: [variable: "lots"])
                }
                #expect(error?.description.contains(variable) == true, "\(String(describing: error))")
                #expect(error?.description.contains("'lots'") == true)
            }
            if let flag = setting.flag {
                let error = #expect(throws: ProcessorError.self, "\(flag)") {
                    try ProcessorOptions(arguments: [flag, "-1"], environment: [:])
                }
                #expect(error?.description.contains(flag) == true, "\(String(describing: error))")
            }
        }
        let limits = try SlipLimits.fromEnvironment([
            "SLIPWAY_MAX_MESSAGE_BYTES": "2048", "SLIPWAY_MAX_ITINERARY_STEPS": "5", "SLIPWAY_MAX_VARIABLES_BYTES": "512",
        ])
        #expect(limits == SlipLimits(maxMessageBytes: 2_048, maxItinerarySteps: 5, maxVariablesBytes: 512))
        #expect(try SlipLimits.fromEnvironment([:]) == SlipLimits())
    }

    @Test("an unknown option, an option without its value and a bad switch are refused; -h asks for help")
    func commandLine() throws {
        let unknown = #expect(throws: ProcessorError.self) { try ProcessorOptions(arguments: ["--prefech", "5"], environment: [:]) }
        #expect(unknown?.description == "unknown option '--prefech'")
        let bare = #expect(throws: ProcessorError.self) { try ProcessorOptions(arguments: ["--state-dir"], environment: [:]) }
        #expect(bare?.description == "--state-dir needs a value")
        #expect(try ProcessorOptions(arguments: ["-h"], environment: [:]).help)
        #expect(try ProcessorOptions(arguments: [], environment: ["SLIPWAY_AUDIT_QUEUE": "off"]).declaresAuditQueue == false)
        let switchError = #expect(throws: ProcessorError.self) {
            try ProcessorOptions(arguments: [], environment: ["SLIPWAY_BATCH_HOP_EVENTS": "maybe"])
        }
        #expect(switchError?.description.contains("SLIPWAY_BATCH_HOP_EVENTS") == true)
    }

    @Test("an empty variable counts as unset; variables outside the table are not read")
    func emptyAndStray() throws {
        let options = try ProcessorOptions(
            arguments: [], environment: ["SLIPWAY_PREFETCH": "", "SLIPWAY_STATE_DIR": "", "MAX_ATTEMPTS": "7"])
        #expect(options.prefetch == nil && options.stateDirectory == ".slipway/state" && options.maxAttempts == nil)
    }

    @Test("--help lists every setting of the table: its option, its variables, its default")
    func usage() {
        let usage = ProcessorOptions.usage("charge-card")
        for setting in ProcessorSetting.all {
            for name in [setting.flag, setting.environment, setting.fileEnvironment].compactMap(\.self) {
                #expect(usage.contains(name), "\(name)")
            }
            #expect(usage.contains(setting.help), "\(setting.key)")
            if !setting.defaultValue.isEmpty { #expect(usage.contains("(default: \(setting.defaultValue))"), "\(setting.key)") }
        }
    }

    @Test("the table's keys, options and variables are each used once, and its defaults are the code's")
    func table() throws {
        let all = ProcessorSetting.all
        for names in [all.map(\.key), all.compactMap(\.flag), all.compactMap(\.environment)] {
            #expect(Set(names).count == names.count, "\(names)")
        }
        let configuration = ProcessorConfiguration(), options = try ProcessorOptions(arguments: [], environment: [:])
        let defaults: [(ProcessorSetting, String)] = [
            (.amqpURL, AMQPConfiguration.defaultURL), (.queueType, configuration.queueType.rawValue),
            (.queuePrefix, Topology().prefix), (.stateDirectory, options.stateDirectory),
            (.hopRecordDays, "\(options.hopRecordDays)"), (.prefetch, "\(configuration.prefetch)"),
            (.concurrency, "\(configuration.concurrency)"), (.maxAttempts, "\(configuration.maxAttempts)"),
            (.io, options.io.rawValue), (.logLevel, options.logLevel.rawValue),
            (.maxMessageBytes, "\(SlipLimits().maxMessageBytes)"), (.maxItinerarySteps, "\(SlipLimits().maxItinerarySteps)"),
            (.maxVariablesBytes, "\(SlipLimits().maxVariablesBytes)"),
        ]
        for (setting, value) in defaults { #expect(setting.defaultValue == value, "\(setting.key)") }
        #expect(configuration.hopEventLinger == .milliseconds(try #require(Int(ProcessorSetting.hopEventLinger.defaultValue))))
        #expect(configuration.claimLease == .milliseconds(try #require(Int(ProcessorSetting.claimLease.defaultValue))))
    }
}
