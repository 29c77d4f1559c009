"""Named physical constants and modelling choices of :mod:`cemrecon.physics`.

Every number that shapes a spectrum, a material or the detector lives here, with
its source.  Sources are the project's reference notes (``physics.md``) unless
stated otherwise.
"""

from __future__ import annotations

#: keV -> joule (CODATA 2018 exact elementary charge x 1e3).
KEV_TO_J = 1.602176634e-16
#: Electron rest energy in keV (CODATA 2018), used for the Compton energy-transfer term.
ELECTRON_REST_KEV = 510.99895

# --- tube and geometry -------------------------------------------------------------
#: Anode (target) angle in degrees (physics.md: "12 deg anode").
ANODE_ANGLE_DEG = 12.0
#: Beryllium exit window in mm (physics.md: "1 mm Be").
BE_WINDOW_MM = 1.0
#: Source-to-image (detector plane) distance in mm.  physics.md quotes its photon
#: budget "at 65 cm"; mammography systems use 650-660 mm.  We use 650 mm so the
#: air kerma and photon numbers are comparable with physics.md section 3.
SID_MM = 650.0
#: Gap between the top of the breast support and the detector plane, in mm
#: (a typical value for a full-field mammography unit; only enters the inverse-square
#: correction from the detector plane to the breast entrance surface for dose).
SUPPORT_TO_DETECTOR_MM = 20.0
#: Spectrum energy bin width in keV (spekpy ``dk``).  0.5 keV bins resolve the iodine
#: K edge (33.17 keV) to within a quarter keV; the bin straddling it is evaluated at
#: its centre, 33.25 keV (above the edge).
ENERGY_BIN_KEV = 0.5
#: Bins whose fluence is below this fraction of the peak bin are dropped (they are
#: the empty low-energy bins under the Be window and filters; dropping them changes
#: any detector signal by < 1e-9 relative).
FLUENCE_FLOOR_REL = 1e-12
#: SignalModel drops low-energy bins (below the peak of the detected spectrum) carrying
#: together less than this fraction of the open-field detector signal (e.g. HE bins
#: below ~18 keV behind 0.3 mm Cu).
SIGNAL_FLOOR_REL = 1e-8

#: Default compression paddle: PMMA, 2.5 mm (physics.md: "PMMA paddle ... 2.5 mm").
PADDLE_PMMA_MM = 2.5
#: Detector cover / breast support: carbon-fibre composite modelled as pure carbon.
DETECTOR_COVER_MM = 1.0
#: Density of the carbon-fibre cover in g/cm^3 (carbon-fibre/epoxy laminates: 1.5-1.6).
CARBON_FIBRE_DENSITY_G_CM3 = 1.55

# --- detector ---------------------------------------------------------------------
#: CsI(Tl) scintillator thickness in mm (physics.md: "0.2 mm CsI").
CSI_THICKNESS_MM = 0.2
#: CsI density in g/cm^3 (bulk crystal; columnar packing fraction ignored).
CSI_DENSITY_G_CM3 = 4.51

# --- anatomy defaults -------------------------------------------------------------
#: Skin thickness per side in mm (physics.md: "1.5 mm skin", Huang Med Phys 2008).
SKIN_MM = 1.5

# --- accepted inputs ----------------------------------------------------------------
ANODES = ("Mo", "Rh", "W")
FILTERS = ("Mo", "Rh", "Ag", "Cu", "Al", "Ti")
#: Accepted tube voltage range in kV (spekpy's mammography validity and CEM practice:
#: LE 26-33 kVp, HE 44-50 kVp, physics.md section 3).
KVP_MIN = 20.0
KVP_MAX = 50.0
#: Upper bound on filter thickness in mm (a sanity limit: 0.3 mm Cu, 1 mm Ti, a few mm Al).
FILTER_MM_MAX = 5.0

#: DICOM defined terms (Anode Target Material 0018,1191, Filter Material 0018,7050)
#: -> element symbol.
DICOM_MATERIAL_TERMS = {
    "MOLYBDENUM": "Mo",
    "RHODIUM": "Rh",
    "TUNGSTEN": "W",
    "SILVER": "Ag",
    "COPPER": "Cu",
    "ALUMINUM": "Al",
    "ALUMINIUM": "Al",
    "TITANIUM": "Ti",
}
