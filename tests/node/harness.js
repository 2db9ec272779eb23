// Runs the IAB reference implementations for the Python tests (tests/test_signals_*.py).
// Reads one JSON request {"op": ..., "items": [...]} on stdin, writes a JSON array on stdout.
"use strict";
const tcf = require("@iabtcf/core");
const gpp = require("@iabgpp/cmpapi");

function vendorIds(model, maxId) {
  // A stand-in for the GVL: the restriction encoder only asks which vendor ids exist.
  const ids = new Set();
  for (let i = 1; i <= maxId; i++) ids.add(i);
  model.publisherRestrictions.gvl = { vendorIds: ids };
}

function tcfEncode(f) {
  const m = new tcf.TCModel();
  m.version = 2;
  m.created = new Date(f.created_ds * 100);
  m.lastUpdated = new Date(f.last_updated_ds * 100);
  m.cmpId = f.cmp_id;
  m.cmpVersion = f.cmp_version;
  m.consentScreen = f.consent_screen;
  m.consentLanguage = f.consent_language;
  m.vendorListVersion = f.vendor_list_version;
  m.policyVersion = f.policy_version;
  m.isServiceSpecific = f.is_service_specific;
  m.useNonStandardStacks = f.use_non_standard_stacks;
  m.purposeOneTreatment = f.purpose_one_treatment;
  m.publisherCountryCode = f.publisher_country_code;
  m.specialFeatureOptins.set(f.special_feature_optins);
  m.purposeConsents.set(f.purpose_consents);
  m.purposeLegitimateInterests.set(f.purpose_legitimate_interests);
  m.vendorConsents.set(f.vendor_consents);
  m.vendorLegitimateInterests.set(f.vendor_legitimate_interests);
  let maxId = 1;
  for (const r of f.publisher_restrictions) {
    const pr = new tcf.PurposeRestriction(r.purpose, r.type);
    for (const v of r.vendors) { m.publisherRestrictions.add(v, pr); maxId = Math.max(maxId, v); }
  }
  vendorIds(m, maxId);
  const segments = [tcf.Segment.CORE];
  if (f.disclosed_vendors !== null) { m.vendorsDisclosed.set(f.disclosed_vendors); segments.push(tcf.Segment.VENDORS_DISCLOSED); }
  if (f.allowed_vendors !== null) { m.vendorsAllowed.set(f.allowed_vendors); segments.push(tcf.Segment.VENDORS_ALLOWED); }
  if (f.publisher !== null) {
    const p = f.publisher;
    m.publisherConsents.set(p.consents);
    m.publisherLegitimateInterests.set(p.legitimate_interests);
    m.numCustomPurposes = p.num_custom_purposes;
    m.publisherCustomConsents.set(p.custom_consents);
    m.publisherCustomLegitimateInterests.set(p.custom_legitimate_interests);
    segments.push(tcf.Segment.PUBLISHER_TC);
  }
  return segments.map((s) => tcf.SegmentEncoder.encode(m, s)).join(".");
}

function ids(vector) { const out = []; vector.forEach((on, id) => { if (on) out.push(id); }); return out; }

function tcfDecode(s) {
  try {
    const m = tcf.TCString.decode(s);
    const restrictions = m.publisherRestrictions.getRestrictions().map((r) => ({
      purpose: r.purposeId, type: r.restrictionType, vendors: m.publisherRestrictions.getVendors(r),
    }));
    return {
      version: m.version, created_ds: Math.round(m.created.getTime() / 100),
      last_updated_ds: Math.round(m.lastUpdated.getTime() / 100), cmp_id: m.cmpId,
      cmp_version: m.cmpVersion, consent_screen: m.consentScreen, consent_language: m.consentLanguage,
      vendor_list_version: m.vendorListVersion, policy_version: m.policyVersion,
      is_service_specific: m.isServiceSpecific, use_non_standard_stacks: m.useNonStandardStacks,
      purpose_one_treatment: m.purposeOneTreatment, publisher_country_code: m.publisherCountryCode,
      special_feature_optins: ids(m.specialFeatureOptins), purpose_consents: ids(m.purposeConsents),
      purpose_legitimate_interests: ids(m.purposeLegitimateInterests),
      vendor_consents: ids(m.vendorConsents), vendor_legitimate_interests: ids(m.vendorLegitimateInterests),
      publisher_restrictions: restrictions, disclosed_vendors: ids(m.vendorsDisclosed),
      allowed_vendors: ids(m.vendorsAllowed), publisher_consents: ids(m.publisherConsents),
      publisher_legitimate_interests: ids(m.publisherLegitimateInterests),
      num_custom_purposes: m.numCustomPurposes,
      publisher_custom_consents: ids(m.publisherCustomConsents),
      publisher_custom_legitimate_interests: ids(m.publisherCustomLegitimateInterests),
    };
  } catch (e) {
    return { error: String(e.message || e) };
  }
}

function gppEncode(item) {
  const model = new gpp.GppModel();
  for (const [section, fields] of Object.entries(item)) {
    for (const [name, value] of Object.entries(fields)) model.setFieldValue(section, name, value);
  }
  return model.encode();
}

function gppDecode(s) {
  try {
    const model = new gpp.GppModel(s);
    const out = { section_ids: model.getSectionIds() };
    if (model.hasSection("usnat")) out.usnat = model.getSection("usnat");
    return out;
  } catch (e) {
    return { error: String(e.message || e) };
  }
}

const ops = { tcf_encode: tcfEncode, tcf_decode: tcfDecode, gpp_encode: gppEncode, gpp_decode: gppDecode };
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d) => { input += d; });
process.stdin.on("end", () => {
  const req = JSON.parse(input);
  const op = ops[req.op];
  if (!op) throw new Error("unknown op " + req.op);
  process.stdout.write(JSON.stringify(req.items.map(op)));
});
process.on("uncaughtException", (e) => { process.stderr.write(String(e && e.stack || e).slice(0, 2000)); process.exit(1); });
