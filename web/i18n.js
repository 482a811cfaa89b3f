// Dutch and English: the texts, and numbers, dates and units formatted per language
// with Intl (no locale data shipped: the browser has it).

/**
 * Field name (group.jsName) → unit: an Intl unit, or a plain symbol appended after the number.
 * @type {Record<string, { intl: string, digits: number } | { sym: Record<string, string>, digits: number }>}
 */
export const UNITS = {
  'technical.odometerKm': { intl: 'kilometer', digits: 0 },
  'technical.speedKmh': { intl: 'kilometer-per-hour', digits: 0 },
  'technical.fuelLevelPct': { intl: 'percent', digits: 0 },
  'technical.batterySocPct': { intl: 'percent', digits: 0 },
  'technical.engineRpm': { sym: { en: 'rpm', nl: 'tpm' }, digits: 0 },
  'technical.coolantTempC': { intl: 'celsius', digits: 1 },
  'technical.outsideTempC': { intl: 'celsius', digits: 1 },
  'technical.auxBatteryVoltageV': { sym: { en: 'V', nl: 'V' }, digits: 1 },
  'technical.remainingRangeKm': { intl: 'kilometer', digits: 0 },
  'technical.engineOilTempC': { intl: 'celsius', digits: 1 },
  'consumption.totalFuelConsumedL': { intl: 'liter', digits: 1 },
  'consumption.totalDistanceKm': { intl: 'kilometer', digits: 0 },
  'consumption.totalFuelConsumedChargeDepletingL': { intl: 'liter', digits: 1 },
  'consumption.totalFuelConsumedChargeIncreasingL': { intl: 'liter', digits: 1 },
  'consumption.totalDistanceChargeDepletingEngineOffKm': { intl: 'kilometer', digits: 0 },
  'consumption.totalDistanceChargeDepletingEngineRunningKm': { intl: 'kilometer', digits: 0 },
  'consumption.totalDistanceChargeIncreasingKm': { intl: 'kilometer', digits: 0 },
  'consumption.totalGridEnergyIntoBatteryKwh': { sym: { en: 'kWh', nl: 'kWh' }, digits: 1 },
  'location.latitude': { sym: { en: '°', nl: '°' }, digits: 5 },
  'location.longitude': { sym: { en: '°', nl: '°' }, digits: 5 },
  'location.headingDeg': { sym: { en: '°', nl: '°' }, digits: 0 },
  'location.altitudeM': { intl: 'meter', digits: 0 },
  'location.accuracyM': { intl: 'meter', digits: 0 },
  avgConsumption: { sym: { en: 'l/100 km', nl: 'l/100 km' }, digits: 1 },
};

const en = {
  appName: 'CarData portal',
  skip: 'Skip to content',
  language: 'Language',
  signIn: 'Sign in',
  signInIntro: 'Sign in to see the data your car sends, who read it, and what you share.',
  signInWith: 'Sign in with your account',
  signInToken: 'Sign in with an access token (for operators and testing)',
  token: 'Access token',
  signOut: 'Sign out',
  sessionExpired: 'Your session has ended. Sign in again to continue where you were.',
  signedInAs: 'Signed in as {who}',
  loading: 'Loading…',
  error: 'Something went wrong: {msg}',
  notAvailable: 'This gateway does not offer this yet.',
  nav: 'Main',
  myVehicles: 'My vehicles',
  noVehicles: 'No vehicles are registered to you.',
  ownerSince: 'yours since {date}',
  overview: 'Overview',
  privacy: 'Privacy',
  sharing: 'Sharing',
  accessLog: 'Access log',
  download: 'Download',
  catalogue: 'What we store',
  vehicle: 'Vehicle {vin}',
  vehicleSections: 'Vehicle pages',
  latest: 'Latest values',
  latestAt: 'Measured {time}',
  noData: 'No data stored yet.',
  live: 'Live',
  polling: 'Updated every {s} s',
  connecting: 'Connecting…',
  liveOn: 'Live: new values appear as the car sends them.',
  liveOff: 'Not live: the stored values are read again every {s} seconds.',
  charts: 'Charts',
  range: 'Range',
  from: 'From',
  to: 'To',
  apply: 'Show',
  last24h: 'Last 24 hours',
  last7d: 'Last 7 days',
  last30d: 'Last 30 days',
  last365d: 'Last year',
  chartSpeed: 'Speed',
  chartOdometer: 'Odometer',
  chartEnergy: 'Fuel level and state of charge',
  chartTemps: 'Temperatures',
  chartObfcm: 'Lifetime counters (OBFCM)',
  chartAvgConsumption: 'Average consumption',
  chartSummary: '{name} from {from} to {to}: lowest {min}, highest {max}.',
  chartEmpty: '{name}: no values in this range.',
  avgInRange: 'Average consumption in this range: {value} over {dist}.',
  avgLifetime: 'Lifetime average consumption: {value}.',
  avg: 'average',
  max: 'maximum',
  track: 'Trip track',
  trackIntro: 'Drawn from the stored positions of the range, on this page only: no map service is asked.',
  trackEmpty: 'No positions are stored for this range.',
  trackOptedOut: 'Location is switched off for this vehicle: no positions are stored, so there is no track.',
  trackLabel: 'Track of {n} positions from {from} to {to}',
  start: 'start',
  end: 'end',
  field: 'Field',
  value: 'Value',
  // privacy
  privacyIntro: 'You decide what is done with your car\'s data. Each choice below says what it means, on what legal basis we process the data, and what changes when you switch it.',
  locationTitle: 'Location (where the car is and went)',
  locationWhat: 'With location on, we store the car\'s position so you can find it and see your trips.',
  locationBasis: 'Legal basis: your consent (GDPR Art. 6(1)(a)). You can withdraw it at any time.',
  locationEffect: 'Switching it off: from that moment no position is stored at all, and your trip track stays empty. Positions stored earlier stay unless you also erase them.',
  locationAllowed: 'Store positions of my car',
  eraseLocationToo: 'Also erase the positions stored so far',
  co2Title: 'Sharing CO2 and fuel consumption data',
  co2What: 'Cars record their real fuel and energy use (OBFCM). EU law asks car makers to send these counters to the European Commission, which uses them to measure real-world CO2 emissions.',
  co2Basis: 'Legal basis: a legal obligation (GDPR Art. 6(1)(c), Regulation (EU) 2021/392); you may refuse this sharing.',
  co2Effect: 'Switching it off: your readings are no longer shared with the authorities from then on. Your own record of the counters stays, for you.',
  co2Allowed: 'Share consumption counters with the authorities',
  save: 'Save choices',
  saved: 'Your choices are saved.',
  state: 'In force since {date}',
  history: 'Your choice history',
  historyEmpty: 'You have not changed anything yet: the defaults apply (both on).',
  when: 'When',
  who: 'Who',
  what: 'What',
  why: 'Why',
  on: 'on',
  off: 'off',
  restrictedWord: 'restricted',
  erasedPositions: 'positions erased',
  restrictionTitle: 'Restriction of processing',
  restrictionWhat: 'Restrict while you contest something: we keep storing what your car sends, but no one else reads it (no workshop, no service you share with, no authority) until you lift the restriction.',
  restrictionBasis: 'Your right under GDPR Art. 18.',
  restrict: 'Restrict processing',
  unrestrict: 'Lift the restriction',
  restrictedNow: 'Processing is restricted now.',
  notRestrictedNow: 'Processing is not restricted.',
  erasureTitle: 'Erase data',
  erasureWhat: 'Erase what your car sent while it was yours: everything, or one category.',
  erasureBasis: 'Your right under GDPR Art. 17.',
  eraseCategory: 'What to erase',
  eraseAll: 'Everything',
  eraseButton: 'Erase…',
  confirmTitle: 'Erase {what}?',
  confirmDeleted: 'Deleted: {what} recorded while the car was yours. This cannot be undone.',
  confirmKeptObfcm: 'Kept: consumption readings already due to the authorities while you allowed CO2 sharing (legal obligation, Regulation (EU) 2021/392), until their retention ends. Refuse CO2 sharing first to have them erased too.',
  confirmKeptLog: 'Kept: your choice history, the access log and a record that you asked for this erasure, without the data itself: we must be able to show what you decided (GDPR Art. 5(2) and 7(1)).',
  confirmKeptOthers: 'Kept: data of other owners of this car, which is theirs.',
  confirmErase: 'Yes, erase',
  cancel: 'Cancel',
  erased: 'Erased: {deleted} records deleted, {updated} records cleared of that category, {obfcm} consumption readings deleted, {kept} kept for the authorities.',
  // sharing
  sharingIntro: 'Give a workshop or a service of your choice access to your car\'s data (EU Data Act, Art. 5). You choose what, why and until when; you can revoke it at any time.',
  recipient: 'Recipient',
  categories: 'Categories',
  purpose: 'Purpose',
  until: 'Until',
  dataFrom: 'Data measured from',
  dataFromHint: 'Empty: only data measured from now on.',
  accessKinds: 'Access',
  accessHistory: 'stored data',
  accessStream: 'live stream',
  grant: 'Grant access',
  granted: 'Access granted to {who}.',
  grants: 'Your grants',
  noGrants: 'You have not shared anything.',
  status: 'Status',
  revoke: 'Revoke',
  revoked: 'Access revoked.',
  receipt: 'Receipt',
  status_active: 'active',
  status_revoked: 'revoked',
  status_expired: 'expired',
  status_ended: 'ended by a transfer',
  checkinTitle: 'Workshop check-in code',
  checkinWhat: 'At the workshop, hand over this short-lived code: it gives that workshop your consumption counters for the visit, and nothing else.',
  checkinMake: 'Make a check-in code',
  visitHours: 'Length of the visit (hours)',
  checkinCode: 'Code: {code}, valid until {until}',
  // access log
  accessIntro: 'Every time someone other than you read your car\'s data: who, what, when and why.',
  accessEmpty: 'No one but you has read this car\'s data.',
  grantRef: 'through grant {id}',
  range_: 'Data range',
  allTime: 'all',
  // download
  downloadIntro: 'Download your CarData: every stored record, in the format you choose (GDPR Art. 15 and 20, EU Data Act Art. 4).',
  format: 'Format',
  fmt_ndjson: 'NDJSON (one JSON record per line)',
  fmt_csv: 'CSV (spreadsheet)',
  fmt_zip: 'ZIP archive (records, catalogue, choice history, access log)',
  startDownload: 'Download',
  downloading: 'Downloading: {bytes} received',
  downloaded: 'Done: {bytes}{records}.',
  recordsCount: ', {n} records',
  cat_technical: 'Technical',
  cat_consumption: 'Consumption',
  cat_location: 'Location',
  // catalogue
  catalogueIntro: 'Every field we store: its unit, category, purpose, legal basis and how long we keep it.',
  unit: 'Unit',
  category: 'Category',
  legalBasis: 'Legal basis',
  retention: 'Retention',
  description: 'Description',
  // recipients
  sharedWithYou: 'Shared with you',
  noShared: 'No one has shared data with you.',
  grantedData: 'Granted data',
  grantOf: 'Grant {id} for vehicle {vin}',
  consumptionVisit: 'Consumption counters of the visit',
  redeemTitle: 'Redeem a check-in code',
  redeem: 'Redeem',
  vinLabel: 'VIN',
  code: 'Code',
  latestRecords: 'Latest records',
};

/**
 * The keys of the texts (Dutch has each English one, and no other).
 * @typedef {keyof typeof en} MessageKey
 */
/**
 * What `t` takes: a text's key, or one made at run time from a category, a grant's status or a format.
 * @typedef {MessageKey | `cat_${string}` | `status_${string}` | `fmt_${string}`} TextKey
 */

/** @type {Record<MessageKey, string>} */
const nl = {
  appName: 'CarData-portaal',
  skip: 'Naar de inhoud',
  language: 'Taal',
  signIn: 'Inloggen',
  signInIntro: 'Log in om te zien welke gegevens uw auto verstuurt, wie ze las en wat u deelt.',
  signInWith: 'Inloggen met uw account',
  signInToken: 'Inloggen met een toegangstoken (voor beheerders en tests)',
  token: 'Toegangstoken',
  signOut: 'Uitloggen',
  sessionExpired: 'Uw sessie is verlopen. Log opnieuw in om verder te gaan waar u was.',
  signedInAs: 'Ingelogd als {who}',
  loading: 'Bezig met laden…',
  error: 'Er ging iets mis: {msg}',
  notAvailable: 'Deze gateway biedt dit nog niet.',
  nav: 'Hoofdmenu',
  myVehicles: 'Mijn voertuigen',
  noVehicles: 'Er staan geen voertuigen op uw naam.',
  ownerSince: 'van u sinds {date}',
  overview: 'Overzicht',
  privacy: 'Privacy',
  sharing: 'Delen',
  accessLog: 'Inzagelog',
  download: 'Downloaden',
  catalogue: 'Wat we opslaan',
  vehicle: 'Voertuig {vin}',
  vehicleSections: 'Voertuigpagina\'s',
  latest: 'Laatste waarden',
  latestAt: 'Gemeten {time}',
  noData: 'Nog geen gegevens opgeslagen.',
  live: 'Live',
  polling: 'Elke {s} s bijgewerkt',
  connecting: 'Verbinden…',
  liveOn: 'Live: nieuwe waarden verschijnen zodra de auto ze verstuurt.',
  liveOff: 'Niet live: de opgeslagen waarden worden elke {s} seconden opnieuw gelezen.',
  charts: 'Grafieken',
  range: 'Periode',
  from: 'Van',
  to: 'Tot',
  apply: 'Tonen',
  last24h: 'Afgelopen 24 uur',
  last7d: 'Afgelopen 7 dagen',
  last30d: 'Afgelopen 30 dagen',
  last365d: 'Afgelopen jaar',
  chartSpeed: 'Snelheid',
  chartOdometer: 'Kilometerstand',
  chartEnergy: 'Brandstofniveau en laadtoestand',
  chartTemps: 'Temperaturen',
  chartObfcm: 'Levensduurtellers (OBFCM)',
  chartAvgConsumption: 'Gemiddeld verbruik',
  chartSummary: '{name} van {from} tot {to}: laagste {min}, hoogste {max}.',
  chartEmpty: '{name}: geen waarden in deze periode.',
  avgInRange: 'Gemiddeld verbruik in deze periode: {value} over {dist}.',
  avgLifetime: 'Gemiddeld verbruik over de levensduur: {value}.',
  avg: 'gemiddeld',
  max: 'hoogste',
  track: 'Ritten op de kaart',
  trackIntro: 'Getekend uit de opgeslagen posities van de periode, alleen op deze pagina: er wordt geen kaartdienst gevraagd.',
  trackEmpty: 'Voor deze periode zijn geen posities opgeslagen.',
  trackOptedOut: 'Locatie staat uit voor dit voertuig: er worden geen posities opgeslagen, dus er is geen route.',
  trackLabel: 'Route van {n} posities van {from} tot {to}',
  start: 'begin',
  end: 'eind',
  field: 'Veld',
  value: 'Waarde',
  privacyIntro: 'U bepaalt wat er met de gegevens van uw auto gebeurt. Bij elke keuze hieronder staat wat die betekent, op welke wettelijke grondslag we de gegevens verwerken en wat er verandert als u hem omzet.',
  locationTitle: 'Locatie (waar de auto is en was)',
  locationWhat: 'Met locatie aan slaan we de positie van de auto op, zodat u hem kunt vinden en uw ritten kunt zien.',
  locationBasis: 'Grondslag: uw toestemming (AVG art. 6 lid 1 sub a). U kunt die altijd intrekken.',
  locationEffect: 'Zet u het uit, dan wordt vanaf dat moment geen enkele positie meer opgeslagen en blijft uw route leeg. Eerder opgeslagen posities blijven, tenzij u ze ook wist.',
  locationAllowed: 'Posities van mijn auto opslaan',
  eraseLocationToo: 'Ook de tot nu toe opgeslagen posities wissen',
  co2Title: 'Delen van CO2- en verbruiksgegevens',
  co2What: 'Auto\'s registreren hun werkelijke brandstof- en energieverbruik (OBFCM). De EU verplicht autofabrikanten deze tellers aan de Europese Commissie te sturen, die er de CO2-uitstoot in de praktijk mee meet.',
  co2Basis: 'Grondslag: een wettelijke verplichting (AVG art. 6 lid 1 sub c, Verordening (EU) 2021/392); u mag dit delen weigeren.',
  co2Effect: 'Zet u het uit, dan worden uw meetwaarden vanaf dat moment niet meer met de overheid gedeeld. Uw eigen overzicht van de tellers blijft, voor u.',
  co2Allowed: 'Verbruikstellers delen met de overheid',
  save: 'Keuzes opslaan',
  saved: 'Uw keuzes zijn opgeslagen.',
  state: 'Geldt sinds {date}',
  history: 'Uw keuzegeschiedenis',
  historyEmpty: 'U heeft nog niets gewijzigd: de standaardinstellingen gelden (beide aan).',
  when: 'Wanneer',
  who: 'Wie',
  what: 'Wat',
  why: 'Waarom',
  on: 'aan',
  off: 'uit',
  restrictedWord: 'beperkt',
  erasedPositions: 'posities gewist',
  restrictionTitle: 'Beperking van de verwerking',
  restrictionWhat: 'Beperk de verwerking zolang u iets betwist: we slaan op wat uw auto verstuurt, maar niemand anders leest het (geen garage, geen dienst waarmee u deelt, geen overheid) tot u de beperking opheft.',
  restrictionBasis: 'Uw recht volgens AVG art. 18.',
  restrict: 'Verwerking beperken',
  unrestrict: 'Beperking opheffen',
  restrictedNow: 'De verwerking is nu beperkt.',
  notRestrictedNow: 'De verwerking is niet beperkt.',
  erasureTitle: 'Gegevens wissen',
  erasureWhat: 'Wis wat uw auto verstuurde terwijl hij van u was: alles, of één categorie.',
  erasureBasis: 'Uw recht volgens AVG art. 17.',
  eraseCategory: 'Wat wissen',
  eraseAll: 'Alles',
  eraseButton: 'Wissen…',
  confirmTitle: '{what} wissen?',
  confirmDeleted: 'Gewist: {what} vastgelegd terwijl de auto van u was. Dit kan niet ongedaan worden gemaakt.',
  confirmKeptObfcm: 'Bewaard: verbruiksmetingen die al aan de overheid verschuldigd waren toen u het delen van CO2-gegevens toestond (wettelijke verplichting, Verordening (EU) 2021/392), tot hun bewaartermijn afloopt. Weiger eerst het delen van CO2-gegevens om ook die te laten wissen.',
  confirmKeptLog: 'Bewaard: uw keuzegeschiedenis, het inzagelog en een vastlegging dat u om dit wissen vroeg, zonder de gegevens zelf: we moeten kunnen aantonen wat u besloot (AVG art. 5 lid 2 en 7 lid 1).',
  confirmKeptOthers: 'Bewaard: gegevens van andere eigenaren van deze auto; die zijn van hen.',
  confirmErase: 'Ja, wissen',
  cancel: 'Annuleren',
  erased: 'Gewist: {deleted} records verwijderd, {updated} records ontdaan van die categorie, {obfcm} verbruiksmetingen verwijderd, {kept} bewaard voor de overheid.',
  sharingIntro: 'Geef een garage of een dienst naar keuze toegang tot de gegevens van uw auto (EU-Dataverordening, art. 5). U kiest wat, waarom en tot wanneer; u kunt het altijd intrekken.',
  recipient: 'Ontvanger',
  categories: 'Categorieën',
  purpose: 'Doel',
  until: 'Tot',
  dataFrom: 'Gegevens gemeten vanaf',
  dataFromHint: 'Leeg: alleen gegevens gemeten vanaf nu.',
  accessKinds: 'Toegang',
  accessHistory: 'opgeslagen gegevens',
  accessStream: 'livestream',
  grant: 'Toegang geven',
  granted: 'Toegang gegeven aan {who}.',
  grants: 'Uw toegangen',
  noGrants: 'U deelt niets.',
  status: 'Status',
  revoke: 'Intrekken',
  revoked: 'Toegang ingetrokken.',
  receipt: 'Bewijs',
  status_active: 'actief',
  status_revoked: 'ingetrokken',
  status_expired: 'verlopen',
  status_ended: 'beëindigd door overdracht',
  checkinTitle: 'Inchecken bij de garage',
  checkinWhat: 'Geef bij de garage deze kortgeldige code: daarmee krijgt die garage de verbruikstellers voor dit bezoek, en niets anders.',
  checkinMake: 'Incheckcode maken',
  visitHours: 'Duur van het bezoek (uren)',
  checkinCode: 'Code: {code}, geldig tot {until}',
  accessIntro: 'Elke keer dat iemand anders dan u de gegevens van uw auto las: wie, wat, wanneer en waarom.',
  accessEmpty: 'Niemand behalve u heeft de gegevens van deze auto gelezen.',
  grantRef: 'via toegang {id}',
  range_: 'Periode van de gegevens',
  allTime: 'alles',
  downloadIntro: 'Download uw CarData: elk opgeslagen record, in het formaat dat u kiest (AVG art. 15 en 20, EU-Dataverordening art. 4).',
  format: 'Formaat',
  fmt_ndjson: 'NDJSON (één JSON-record per regel)',
  fmt_csv: 'CSV (spreadsheet)',
  fmt_zip: 'ZIP-archief (records, catalogus, keuzegeschiedenis, inzagelog)',
  startDownload: 'Downloaden',
  downloading: 'Bezig met downloaden: {bytes} ontvangen',
  downloaded: 'Klaar: {bytes}{records}.',
  recordsCount: ', {n} records',
  cat_technical: 'Technisch',
  cat_consumption: 'Verbruik',
  cat_location: 'Locatie',
  catalogueIntro: 'Elk veld dat we opslaan: eenheid, categorie, doel, grondslag en hoe lang we het bewaren.',
  unit: 'Eenheid',
  category: 'Categorie',
  legalBasis: 'Grondslag',
  retention: 'Bewaartermijn',
  description: 'Omschrijving',
  sharedWithYou: 'Met u gedeeld',
  noShared: 'Niemand deelt gegevens met u.',
  grantedData: 'Gedeelde gegevens',
  grantOf: 'Toegang {id} voor voertuig {vin}',
  consumptionVisit: 'Verbruikstellers van het bezoek',
  redeemTitle: 'Incheckcode inwisselen',
  redeem: 'Inwisselen',
  vinLabel: 'VIN',
  code: 'Code',
  latestRecords: 'Laatste records',
};

/**
 * Field labels per language (the catalogue's own descriptions are in English).
 * @type {Record<string, Record<string, string>>}
 */
export const FIELD_LABELS = {
  en: {
    'technical.odometerKm': 'Odometer', 'technical.speedKmh': 'Speed', 'technical.fuelLevelPct': 'Fuel level', 'technical.batterySocPct': 'State of charge',
    'technical.engineRpm': 'Engine speed', 'technical.coolantTempC': 'Coolant temperature', 'technical.outsideTempC': 'Outside temperature',
    'technical.auxBatteryVoltageV': '12 V battery', 'technical.remainingRangeKm': 'Remaining range', 'technical.engineOilTempC': 'Engine oil temperature',
    'consumption.totalFuelConsumedL': 'Total fuel consumed', 'consumption.totalDistanceKm': 'Total distance',
    'consumption.totalFuelConsumedChargeDepletingL': 'Fuel, charge-depleting', 'consumption.totalFuelConsumedChargeIncreasingL': 'Fuel, charge-increasing',
    'consumption.totalDistanceChargeDepletingEngineOffKm': 'Distance, charge-depleting, engine off', 'consumption.totalDistanceChargeDepletingEngineRunningKm': 'Distance, charge-depleting, engine running',
    'consumption.totalDistanceChargeIncreasingKm': 'Distance, charge-increasing', 'consumption.totalGridEnergyIntoBatteryKwh': 'Grid energy into the battery',
    'location.latitude': 'Latitude', 'location.longitude': 'Longitude', 'location.headingDeg': 'Heading', 'location.altitudeM': 'Altitude', 'location.accuracyM': 'Accuracy',
  },
  nl: {
    'technical.odometerKm': 'Kilometerstand', 'technical.speedKmh': 'Snelheid', 'technical.fuelLevelPct': 'Brandstofniveau', 'technical.batterySocPct': 'Laadtoestand',
    'technical.engineRpm': 'Toerental', 'technical.coolantTempC': 'Koelvloeistoftemperatuur', 'technical.outsideTempC': 'Buitentemperatuur',
    'technical.auxBatteryVoltageV': '12V-accu', 'technical.remainingRangeKm': 'Resterende actieradius', 'technical.engineOilTempC': 'Motorolietemperatuur',
    'consumption.totalFuelConsumedL': 'Totaal brandstofverbruik', 'consumption.totalDistanceKm': 'Totale afstand',
    'consumption.totalFuelConsumedChargeDepletingL': 'Brandstof, ladingverbruikend', 'consumption.totalFuelConsumedChargeIncreasingL': 'Brandstof, ladingverhogend',
    'consumption.totalDistanceChargeDepletingEngineOffKm': 'Afstand, ladingverbruikend, motor uit', 'consumption.totalDistanceChargeDepletingEngineRunningKm': 'Afstand, ladingverbruikend, motor aan',
    'consumption.totalDistanceChargeIncreasingKm': 'Afstand, ladingverhogend', 'consumption.totalGridEnergyIntoBatteryKwh': 'Netstroom in de accu',
    'location.latitude': 'Breedtegraad', 'location.longitude': 'Lengtegraad', 'location.headingDeg': 'Rijrichting', 'location.altitudeM': 'Hoogte', 'location.accuracyM': 'Nauwkeurigheid',
  },
};


/**
 * The catalogue's purposes, legal bases and retention per category in Dutch (the API
 * answers them in English: api/catalogue.ts PURPOSES is the source; keep the two in step).
 * @type {Record<string, { purpose: string, legalBasis: string, retention: string }>}
 */
export const PURPOSES_NL = {
  technical: {
    purpose: 'Gebruik, onderhoud en diagnose van het voertuig; de connected diensten die de eigenaar gebruikt.',
    legalBasis: 'AVG art. 6 lid 1 sub b: uitvoering van de overeenkomst voor connected diensten met de eigenaar.',
    retention: 'Zolang de eigenaar het voertuig bezit, daarna RETENTION_AFTER_CONTRACT_DAYS (standaard 7 jaar) na het einde van het eigendom; of tot de eigenaar het wist.',
  },
  consumption: {
    purpose: 'Monitoring van het brandstof- en energieverbruik aan boord (Verordening (EU) 2017/1151 bijlage XXII); de verstrekking daarvan aan de Europese Commissie en nationale autoriteiten (Verordening (EU) 2021/392); de verbruiksstatistieken van de eigenaar; onderhoud door garages.',
    legalBasis: 'AVG art. 6 lid 1 sub c: wettelijke verplichting onder (EU) 2021/392 voor het deelbare exemplaar, dat de eigenaar mag weigeren (co2Sharing); art. 6 lid 1 sub b voor het eigen overzicht van de eigenaar.',
    retention: 'Overzicht van de eigenaar: als technische gegevens. Deelbare metingen: OBFCM_RETENTION_DAYS (standaard 7 jaar) na de meting; wissen verwijdert ze zodra de eigenaar het delen van CO2-gegevens heeft geweigerd.',
  },
  location: {
    purpose: 'De eigenaar laten zien waar het voertuig is en was (voertuig vinden, rittenoverzicht).',
    legalBasis: 'AVG art. 6 lid 1 sub a: toestemming, altijd te weigeren of in te trekken (locatie uit); zolang geweigerd wordt er niets opgeslagen.',
    retention: 'Als technische gegevens, of tot de eigenaar locatie uitzet met eraseHistory=true of de gegevens wist.',
  },
};

export const TEXTS = { en, nl };
export const LANGS = [
  { code: 'nl', name: 'Nederlands' },
  { code: 'en', name: 'English' },
];

/**
 * The language of this browser session: chosen before, else the browser's, else Dutch.
 * @returns {string}
 */
export function initialLang() {
  const saved = localStorage.getItem('cardata.lang');
  if (saved === 'en' || saved === 'nl') return saved;
  return (navigator.language || 'nl').toLowerCase().startsWith('en') ? 'en' : 'nl';
}

/**
 * The texts and formatters of one language.
 * @param {string} lang
 */
export function messages(lang) {
  /** @type {Record<string, string>} */
  const dict = /** @type {Partial<Record<string, Record<string, string>>>} */ (TEXTS)[lang] ?? nl;
  /** @type {Record<string, string>} */
  const fallback = en;
  const locale = lang === 'en' ? 'en-GB' : 'nl-NL';
  /** @type {Map<string, Intl.NumberFormat>} */
  const numFmt = new Map();
  /** @param {Intl.NumberFormatOptions} opts */
  const numberFormat = (opts) => {
    const k = JSON.stringify(opts);
    if (!numFmt.has(k)) numFmt.set(k, new Intl.NumberFormat(locale, opts));
    return /** @type {Intl.NumberFormat} */ (numFmt.get(k));
  };
  // Intl formatters are costly to make (tens of ms for a page's worth): one per kind and language.
  /** @type {Map<string, Intl.DateTimeFormat>} */
  const dateFmt = new Map();
  /** @param {Intl.DateTimeFormatOptions} opts */
  const dateFormat = (opts) => {
    const k = JSON.stringify(opts);
    if (!dateFmt.has(k)) dateFmt.set(k, new Intl.DateTimeFormat(locale, opts));
    return /** @type {Intl.DateTimeFormat} */ (dateFmt.get(k));
  };
  const dateTime = dateFormat({ dateStyle: 'medium', timeStyle: 'medium' });
  const dateOnly = dateFormat({ dateStyle: 'medium' });
  /** @type {(key: TextKey, vars?: Record<string, string | number>) => string} */
  const t = (key, vars = {}) => String(dict[key] ?? fallback[key] ?? key).replace(/\{(\w+)\}/g, (_, /** @type {string} */ k) => (vars[k] === undefined ? `{${k}}` : String(vars[k])));
  return {
    lang,
    locale,
    t,
    /** @type {(v: number | null | undefined, digits?: number) => string} */
    number: (v, digits = 0) => (v === null || v === undefined || Number.isNaN(v) ? '–' : numberFormat({ maximumFractionDigits: digits, minimumFractionDigits: 0 }).format(v)),
    /**
     * A value with its unit, e.g. "88 km/h" / "88 km/u".
     * @param {string} field
     * @param {number | null | undefined} v
     */
    unit(field, v) {
      if (v === null || v === undefined || Number.isNaN(v)) return '–';
      const u = UNITS[field];
      if (!u) return numberFormat({ maximumFractionDigits: 3 }).format(v);
      if ('intl' in u) return numberFormat({ style: 'unit', unit: u.intl, unitDisplay: 'short', maximumFractionDigits: u.digits }).format(v);
      const sym = u.sym[lang] ?? u.sym.en;
      return `${numberFormat({ maximumFractionDigits: u.digits }).format(v)}${sym === '°' ? '' : '\u00a0'}${sym}`;
    },
    bytes: (/** @type {number} */ n) => numberFormat({ style: 'unit', unit: n >= 1e6 ? 'megabyte' : 'kilobyte', maximumFractionDigits: 1 }).format(n >= 1e6 ? n / 1e6 : n / 1e3),
    dateTime: (/** @type {string | number | null | undefined} */ d) => (d ? dateTime.format(new Date(d)) : '–'),
    date: (/** @type {string | number | null | undefined} */ d) => (d ? dateOnly.format(new Date(d)) : '–'),
    label: (/** @type {string} */ field) => FIELD_LABELS[lang]?.[field] ?? field,
    /** An Intl.DateTimeFormat of this language with these options, made once. */
    dateFormat,
  };
}

/** @typedef {ReturnType<typeof messages>} Messages */
