import Configuration
import SlipwayCore

extension SlipLimits {
    /// The defaults, overridden by `SLIPWAY_MAX_MESSAGE_BYTES`, `SLIPWAY_MAX_ITINERARY_STEPS` and
    /// `SLIPWAY_MAX_VARIABLES_BYTES`.
    public static func fromEnvironment(_ environment: [String: String]) throws -> SlipLimits {
        try SlipLimits(reading: .processorSettings([.maxMessageBytes, .maxItinerarySteps, .maxVariablesBytes], environment: environment))
    }

    /// The defaults, overridden by the limits' settings.
    init(reading reader: ConfigReader) throws {
        func read(_ setting: ProcessorSetting) throws -> Int? {
            try reader.value(setting).map { try ProcessorOptions.positive($0, setting.name) }
        }
        self.init()
        maxMessageBytes = try read(.maxMessageBytes) ?? maxMessageBytes
        maxItinerarySteps = try read(.maxItinerarySteps) ?? maxItinerarySteps
        maxVariablesBytes = try read(.maxVariablesBytes) ?? maxVariablesBytes
    }
}
