"""``ToyShowerSimulator``: thrown showers -> triggered camera images, a batch at a time.

The chain for a batch of ``N`` showers (all numpy, vectorised over the batch):

1. **Shower** (:mod:`.shower`): electromagnetic components with Gaisser-Hillas profiles,
   fluctuating first interaction and depth of maximum; protons are a superposition of tilted
   sub-showers, a fraction of them also carries a muon.
2. **Emission points**: each component's axis is cut into depth slices in 3D (ground frame,
   flat exponential atmosphere). A slice emits ``track * PHOTONS_PER_DEPTH`` photons; the share
   reaching the mirror follows the Cherenkov angular distribution at the angle between the
   shower direction and the line to the telescope (:mod:`.light`), over the distance squared.
   Each slice is projected into the camera from the telescope's actual position
   (:mod:`.geometry`), with a lateral (Moliere) spread and the optical PSF; photon arrival
   times follow the geometry (shower front plus light path), which gives the time gradient.
3. **Photo-electrons**: the total is Poisson; photo-electrons are placed along the slices and
   binned into the hexagonal pixels (light outside the camera is lost). Very bright events are
   sampled with at most ``max_photon_packets`` weighted packets and the pixel counts are then
   drawn as Poisson around the packet estimate.
4. **Detector** (:mod:`.detector`): PMT excess noise, night-sky background, electronic noise,
   saturation, a 7-pixel patch sum trigger and per-pixel peak times.

Shortcuts that only save time: a coarse pass (4 depth slices) skips showers whose light at
the mirror is 20 times below the level followed further (coarse and fine light agree within a
factor of 2); showers whose expected light at the mirror is below a quarter of what a trigger
needs are not followed into the camera (chance to trigger < 1e-6); and
events whose photo-electrons in the camera lie so far below the threshold that even a
6-sigma noise fluctuation of a whole patch cannot fire it are declared not triggered without
drawing their noise.
"""

from dataclasses import dataclass

import astropy.units as u
import numpy as np
from ctapipe.core import Component
from ctapipe.core.traits import AstroQuantity, Float, Int

from .atmosphere import (
    cherenkov_angle,
    height_from_vertical_depth,
    moliere_radius,
    vertical_depth,
)
from .detector import HexPixelLookup, PatchTrigger, digitise
from .geometry import altaz_to_vector, camera_from_fov, fov_from_vector, rotate_about_perpendicular
from .light import (
    ABOVE_THRESHOLD,
    PHOTONS_PER_DEPTH,
    angular_density,
    muon_chord,
    muon_photons_per_radian,
)
from .shower import gaisser_hillas_cdf, sample_components, track_length

__all__ = ["PRIMARY_IDS", "ToyShowerSimulator", "ToySimulationResult"]

#: ``shower_primary_id`` (CORSIKA / sim_telarray convention).
PRIMARY_IDS = {"gamma": 0, "proton": 101}

#: Depth slices per electromagnetic component.
_N_SLICES = {"gamma": 32, "proton": 16}
#: Depth slices of the coarse first pass that picks the showers worth following.
_N_COARSE_SLICES = 4
#: Safety factor of the coarse pass against the fine one (they differ by < 2 in practice).
_COARSE_SAFETY = 20.0
#: Points along a muon ring.
_N_RING_POINTS = 48
_SPEED_OF_LIGHT = 0.299792458  # m/ns


@dataclass
class ToySimulationResult:
    """Output of :meth:`ToyShowerSimulator.simulate` for ``N`` thrown showers.

    Per thrown shower (length ``N``): ``triggered``, ``impact`` [m, distance of the telescope
    to the shower axis], ``h_first_int`` [m a.s.l.], ``x_max`` [g/cm2], ``n_muons``,
    ``true_size`` [p.e. in the camera; 0 for showers too faint to be followed into the
    camera]. Per triggered event (``n_triggered`` rows):
    ``image`` and ``peak_time`` (float32), ``true_image`` (int32 p.e.).
    """

    triggered: np.ndarray
    impact: np.ndarray
    h_first_int: np.ndarray
    x_max: np.ndarray
    n_muons: np.ndarray
    true_size: np.ndarray
    image: np.ndarray
    peak_time: np.ndarray
    true_image: np.ndarray


class ToyShowerSimulator(Component):
    """Toy air-shower, Cherenkov-light and camera simulation of one telescope.

    Parameters
    ----------
    subarray : ctapipe.instrument.SubarrayDescription
        Instrument; the telescope ``tel_id`` must have a hexagonal-lattice camera.
    tel_id : int
        The simulated telescope.
    """

    photon_detection_efficiency = Float(
        0.1,
        min=0.0,
        max=1.0,
        help="Mirror reflectivity x light-guide x photon detection efficiency",
    ).tag(config=True)
    lateral_scale = Float(
        0.04, min=0.0, help="Lateral spread of the light-emitting electrons in Moliere radii"
    ).tag(config=True)
    psf = AstroQuantity(
        default_value=0.03 * u.deg,
        physical_type=u.deg,
        help="Optical point-spread (Gaussian sigma)",
    ).tag(config=True)
    muon_probability = Float(
        0.3,
        min=0.0,
        max=1.0,
        help=(
            "Probability of a muon near the telescope for a 1 TeV proton with its core at the"
            " telescope; scales as (E / TeV)**0.85 * exp(-core distance / 250 m), at most 1"
        ),
    ).tag(config=True)
    muon_max_impact = AstroQuantity(
        default_value=60 * u.m,
        physical_type=u.m,
        help="Muon impacts are uniform in a disc of this radius",
    ).tag(config=True)
    excess_noise = Float(
        0.12, min=0.0, help="Relative width of the single-p.e. amplitude (PMT excess noise)"
    ).tag(config=True)
    nsb_mean_pe = Float(
        0.05, min=0.0, help="Mean night-sky-background p.e. per pixel in the integration window"
    ).tag(config=True)
    electronic_noise = Float(0.15, min=0.0, help="Gaussian electronic noise per pixel [p.e.]").tag(
        config=True
    )
    saturation = Float(4176.0, min=1.0, help="Pixel charge saturation [p.e.]").tag(config=True)
    trigger_threshold = Float(
        30.0, min=0.0, help="Trigger threshold of the 7-pixel patch sum [p.e.]"
    ).tag(config=True)
    time_jitter = AstroQuantity(
        default_value=1.5 * u.ns, physical_type=u.ns, help="Single-p.e. time jitter (sigma)"
    ).tag(config=True)
    signal_time = AstroQuantity(
        default_value=40 * u.ns,
        physical_type=u.ns,
        help="Mean peak time of the signal in the readout window",
    ).tag(config=True)
    max_photon_packets = Int(
        20_000, min=100, help="Most photo-electron packets sampled per event (speed/accuracy)"
    ).tag(config=True)

    def __init__(self, subarray, tel_id=1, config=None, parent=None, **kwargs):
        super().__init__(config=config, parent=parent, **kwargs)
        self.subarray = subarray
        self.tel_id = tel_id
        tel = subarray.tel[tel_id]
        self.geometry = tel.camera.geometry
        self.focal_length = tel.optics.equivalent_focal_length.to_value(u.m)
        self.mirror_area = tel.optics.mirror_area.to_value(u.m**2)
        readout = tel.camera.readout
        self.readout_window = (readout.n_samples / readout.sampling_rate).to_value(u.ns)
        self.tel_position = subarray.positions[tel_id].to_value(u.m)
        self.observation_height = (
            subarray.reference_location.height.to_value(u.m) + self.tel_position[2]
        )
        self.lookup = HexPixelLookup(self.geometry)
        self.trigger = PatchTrigger(self.geometry)
        self.n_pixels = self.geometry.n_pixels

    @property
    def noise_rms(self):
        """r.m.s. of the pedestal-subtracted charge of an empty pixel [p.e.]."""
        return float(np.sqrt(self.nsb_mean_pe + self.electronic_noise**2))

    # -- geometry -----------------------------------------------------------------------
    def _camera(self, vectors, pointing):
        lon, lat = fov_from_vector(vectors, *pointing)
        return camera_from_fov(lon, lat, self.focal_length)

    def _shower_slices(self, primary, core, axis, comps, n_slices=None):
        """Depth slices of the existing components and the light each sends to the mirror.

        Returns a dict of arrays over the ``C`` existing components: ``event (C,)``,
        ``edges (C, K+1, 3)`` [m, ground frame relative to the telescope], ``h_edges``,
        ``x_edges``, ``x0``, ``x_max``, ``direction (C, 3)`` and ``mu (C, K)`` [p.e.].
        """
        h_obs = self.observation_height
        n_slices = n_slices or _N_SLICES[primary]
        event, slot = np.nonzero(comps.valid)
        axis_c = axis[event]
        cos_z = axis_c[:, 2]
        h_start = height_from_vertical_depth(comps.x_start[event, slot] * cos_z)
        sideways = rotate_about_perpendicular(axis_c, np.pi / 2, comps.offset_azimuth[event, slot])
        anchor = (
            core[event]
            + ((h_start - h_obs) / cos_z)[:, None] * axis_c
            + comps.offset[event, slot][:, None] * sideways
        )
        direction = rotate_about_perpendicular(
            axis_c, comps.tilt[event, slot], comps.tilt_azimuth[event, slot]
        )
        cz = direction[:, 2]
        x0 = vertical_depth(h_start) / cz
        x_ground = vertical_depth(h_obs) / cz
        x_max = comps.x_max[event, slot] * cos_z / cz
        frac = np.linspace(0.0, 1.0, n_slices + 1)
        x_edges = x0[:, None] + (x_ground - x0)[:, None] * frac  # (C, K+1)
        h_edges = height_from_vertical_depth(x_edges * cz[:, None])
        along = (h_edges - h_start[:, None]) / cz[:, None]
        edges = anchor[:, None, :] + along[..., None] * direction[:, None, :]

        # electron track length per slice and the share of its light reaching the mirror
        cdf = gaisser_hillas_cdf(x_edges, x0[:, None], x_max[:, None])
        track = track_length(comps.energy[event, slot])[:, None] * np.maximum(np.diff(cdf), 0.0)
        mid = 0.5 * (edges[:, :-1] + edges[:, 1:])
        h_mid = 0.5 * (h_edges[:, :-1] + h_edges[:, 1:])
        distance = np.sqrt(np.einsum("ckx,ckx->ck", mid, mid))
        cos_psi = np.einsum("ckx,cx->ck", mid, direction) / distance
        psi = np.arccos(np.clip(cos_psi, -1.0, 1.0))
        efficiency = self.photon_detection_efficiency * self.mirror_area * ABOVE_THRESHOLD
        mu = (
            track
            * (PHOTONS_PER_DEPTH * efficiency)
            * angular_density(psi, cherenkov_angle(h_mid))
            / distance**2
        )
        mu[mid[..., 2] <= 0] = 0.0  # nothing from below the telescope
        return {
            "event": event,
            "edges": edges,
            "h_edges": h_edges,
            "x_edges": x_edges,
            "x0": x0,
            "x_max": x_max,
            "mu": mu,
        }

    def _project_slices(self, slices, keep, core, axis, pointing):
        """Camera positions, arrival times and spread of the slices of components ``keep``."""
        event = slices["event"][keep]
        edges = slices["edges"][keep]
        x_edges = slices["x_edges"][keep]
        x0, x_max = slices["x0"][keep], slices["x_max"][keep]
        h_mid = 0.5 * (slices["h_edges"][keep, :-1] + slices["h_edges"][keep, 1:])
        distance_edges = np.sqrt(np.einsum("ckx,ckx->ck", edges, edges))
        distance = 0.5 * (distance_edges[:, :-1] + distance_edges[:, 1:])

        # lateral spread grows with shower age; optical PSF added in quadrature
        depth = 0.5 * (x_edges[:, :-1] + x_edges[:, 1:]) - x0[:, None]
        age = 3 * depth / (depth + 2 * np.maximum(x_max - x0, 1.0)[:, None])
        spread = self.lateral_scale * moliere_radius(h_mid) * (0.5 + 0.5 * age) / distance
        sigma = self.focal_length * np.sqrt(spread**2 + self.psf.to_value(u.rad) ** 2)

        cam_x, cam_y = self._camera(edges, pointing)
        # particles reach P at -(P - core).axis / c, light then travels |P| to the telescope
        front = -np.einsum("ckx,cx->ck", edges - core[event][:, None, :], axis[event])
        times = (front + distance_edges) / _SPEED_OF_LIGHT
        k = x_edges.shape[1] - 1
        return {
            "event": np.repeat(event, k),
            "x0": cam_x[:, :-1].ravel(),
            "x1": cam_x[:, 1:].ravel(),
            "y0": cam_y[:, :-1].ravel(),
            "y1": cam_y[:, 1:].ravel(),
            "t0": times[:, :-1].ravel(),
            "t1": times[:, 1:].ravel(),
            "sigma": sigma.ravel(),
            "mu": slices["mu"][keep].ravel(),
        }

    def muon_probability_of(self, primary, energy, core_distance):
        """Probability of a muon ring or arc in an event (protons only)."""
        if primary != "proton":
            return np.zeros_like(energy)
        scale = energy**0.85 * np.exp(-core_distance / 250.0)
        return np.minimum(self.muon_probability * scale, 1.0)

    def _muon_points(self, primary, energy, core, axis, rng, pointing):
        """Points along the muon rings of the events that have a muon."""
        n = len(core)
        probability = self.muon_probability_of(primary, energy, np.hypot(core[:, 0], core[:, 1]))
        has_muon = rng.uniform(size=n) < probability
        log_energy = rng.uniform(np.log10(6.0), 2.0, size=n)  # GeV
        gamma_factor = 10**log_energy / 0.10566
        beta = np.sqrt(1.0 - 1.0 / gamma_factor**2)
        theta = cherenkov_angle(self.observation_height + 300.0, beta)
        tilt = np.deg2rad(1.0) * np.sqrt(-2.0 * np.log1p(-rng.uniform(size=n)))
        direction = rotate_about_perpendicular(axis, tilt, rng.uniform(0, 2 * np.pi, size=n))
        impact = self.muon_max_impact.to_value(u.m) * np.sqrt(rng.uniform(size=n))
        phi0 = rng.uniform(0, 2 * np.pi, size=n)

        event = np.flatnonzero(has_muon)
        centre_x, centre_y = self._camera(direction[event], pointing)
        step = 2 * np.pi / _N_RING_POINTS
        phi = (np.arange(_N_RING_POINTS) + 0.5) * step
        mirror_radius = np.sqrt(self.mirror_area / np.pi)
        chord = muon_chord(phi[None, :] - phi0[event, None], impact[event, None], mirror_radius)
        theta = theta[event, None]
        mu = muon_photons_per_radian(theta, chord, self.photon_detection_efficiency) * step
        radius = self.focal_length * theta
        lo, hi = phi - 0.5 * step, phi + 0.5 * step
        t_front = np.einsum("nc,nc->n", core[event], axis[event]) / _SPEED_OF_LIGHT - 1.0
        shape = mu.shape
        sigma = self.focal_length * np.hypot(np.deg2rad(0.03), self.psf.to_value(u.rad))
        points = {
            "event": np.repeat(event, _N_RING_POINTS),
            "x0": (centre_x[:, None] + radius * np.cos(lo)).ravel(),
            "x1": (centre_x[:, None] + radius * np.cos(hi)).ravel(),
            "y0": (centre_y[:, None] + radius * np.sin(lo)).ravel(),
            "y1": (centre_y[:, None] + radius * np.sin(hi)).ravel(),
            "t0": np.broadcast_to(t_front[:, None], shape).ravel(),
            "t1": np.broadcast_to(t_front[:, None], shape).ravel(),
            "sigma": np.full(mu.size, sigma),
            "mu": mu.ravel(),
        }
        return points, has_muon.astype(np.int16)

    # -- photo-electrons ---------------------------------------------------------------
    def _photoelectrons(self, points, n, rng):
        """Photo-electrons of each shower, binned into pixels for possible triggers only.

        ``points`` are flat arrays over emission points with their ``event`` index.
        Returns ``true_size (N,)`` [p.e. in the camera], the indices of the trigger
        candidates, and for those ``n_pe``, ``counts`` (packet weights) and the
        weighted arrival-time sums, all ``(n_candidates, P)``.
        """
        order = np.argsort(points["event"], kind="stable")
        points = {key: value[order] for key, value in points.items()}
        point_event = points["event"]
        mu = points["mu"]
        p = self.n_pixels
        total = np.bincount(point_event, weights=mu, minlength=n)
        n_draw = rng.poisson(total)
        cap = self.max_photon_packets
        sampled = n_draw > cap
        n_packets = np.where(sampled, cap, n_draw)
        weight = np.where(sampled, total / cap, 1.0)

        cumulative = np.cumsum(mu)
        first = np.searchsorted(point_event, np.arange(n), side="left")
        last = np.searchsorted(point_event, np.arange(n), side="right") - 1
        start = np.concatenate([[0.0], cumulative])[first]
        event = np.repeat(np.arange(n), n_packets)
        target = start[event] + rng.uniform(size=len(event)) * total[event]
        index = np.minimum(np.searchsorted(cumulative, target, side="right"), last[event])
        tau = rng.uniform(size=len(event))
        gauss = rng.standard_normal(size=(2, len(event)))

        def along(key0, key1):
            a = points[key0][index]
            return a + tau * (points[key1][index] - a)

        sigma = points["sigma"][index]
        x = along("x0", "x1") + sigma * gauss[0]
        y = along("y0", "y1") + sigma * gauss[1]
        pixel = self.lookup(x, y)
        inside = pixel >= 0
        event, pixel, t = event[inside], pixel[inside], along("t0", "t1")[inside]
        true_size = np.bincount(event, weights=weight[event], minlength=n)

        # events that cannot fire the trigger even with a 6-sigma noisy patch are skipped
        candidate = np.flatnonzero(true_size >= self._candidate_size)
        row = np.full(n, -1)
        row[candidate] = np.arange(len(candidate))
        keep = row[event] >= 0
        key = row[event[keep]] * p + pixel[keep]
        w = weight[event[keep]]
        size = len(candidate) * p
        counts = np.bincount(key, weights=w, minlength=size).reshape(-1, p)
        time_sum = np.bincount(key, weights=w * t[keep], minlength=size).reshape(-1, p)
        n_pe = np.rint(counts).astype(np.int64)
        big = sampled[candidate]
        if np.any(big):
            n_pe[big] = rng.poisson(counts[big])
            true_size[candidate[big]] = n_pe[big].sum(axis=1)
        return true_size, candidate, n_pe, counts, time_sum

    @property
    def _min_mirror_pe(self):
        """Expected p.e. at the mirror below which reaching ``_candidate_size`` is hopeless.

        A Poisson mean of a quarter of the needed count gives a chance below 1e-6 for any
        threshold of a few p.e. or more; at least 1 p.e.
        """
        return max(0.25 * self._candidate_size, 1.0)

    @property
    def _candidate_size(self):
        """Fewest p.e. in the camera with which a 6-sigma noisy patch can reach the threshold."""
        return self.trigger_threshold - self.trigger.max_patch_size * 6.0 * self.noise_rms

    def _peak_time(self, n_pe, counts, time_sum, rng):
        window = self.readout_window
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_time = time_sum / counts
            reference = time_sum.sum(axis=1, keepdims=True) / counts.sum(axis=1, keepdims=True)
        jitter = self.time_jitter.to_value(u.ns) / np.sqrt(np.maximum(n_pe, 1))
        signal = (
            self.signal_time.to_value(u.ns)
            + (mean_time - reference)
            + jitter * rng.standard_normal(n_pe.shape)
        )
        noise = rng.uniform(0.0, window, size=n_pe.shape)
        return np.clip(np.where(n_pe > 0, signal, noise), 0.0, window)

    # -- the whole chain ----------------------------------------------------------------
    def simulate(self, showers, rng, primary, pointing):
        """Simulate a batch of thrown showers.

        Parameters
        ----------
        showers : astropy.table.QTable
            Thrown showers (``ThrownDistribution.sample``): ``true_energy``, ``true_core_x``,
            ``true_core_y``, ``true_alt``, ``true_az``.
        rng : numpy.random.Generator
            All random draws of the batch come from it, in a fixed order.
        primary : {"proton", "gamma"}
        pointing : tuple of astropy.units.Quantity
            Telescope pointing ``(alt, az)``.

        Returns
        -------
        ToySimulationResult
        """
        if primary not in PRIMARY_IDS:
            raise ValueError(f"Unknown primary {primary!r}, expected one of {list(PRIMARY_IDS)}")
        n = len(showers)
        energy = showers["true_energy"].to_value(u.TeV)
        alt = showers["true_alt"].to_value(u.rad)
        az = showers["true_az"].to_value(u.rad)
        if np.any(alt <= np.deg2rad(10.0)):
            raise ValueError("The toy simulation needs shower altitudes above 10 deg")
        tel = self.tel_position
        core = np.stack(
            [
                showers["true_core_x"].to_value(u.m) - tel[0],
                showers["true_core_y"].to_value(u.m) - tel[1],
                np.full(n, -tel[2]),
            ],
            axis=-1,
        )
        pointing = (
            u.Quantity(pointing[0]).to_value(u.rad),
            u.Quantity(pointing[1]).to_value(u.rad),
        )
        axis = altaz_to_vector(alt, az)
        comps = sample_components(primary, energy, rng)
        muon, n_muons = self._muon_points(primary, energy, core, axis, rng, pointing)
        muon_mirror = np.bincount(muon["event"], weights=muon["mu"], minlength=n)

        # a coarse pass finds the showers that may send enough light to the mirror
        coarse = self._shower_slices(primary, core, axis, comps, _N_COARSE_SLICES)
        mirror = np.bincount(coarse["event"], weights=coarse["mu"].sum(axis=1), minlength=n)
        rows = np.flatnonzero(mirror + muon_mirror >= self._min_mirror_pe / _COARSE_SAFETY)
        slices = self._shower_slices(primary, core[rows], axis[rows], comps.subset(rows))
        slices["event"] = rows[slices["event"]]

        # only showers sending enough light to the mirror are followed into the camera
        mirror = np.bincount(slices["event"], weights=slices["mu"].sum(axis=1), minlength=n)
        mirror += muon_mirror
        bright = mirror >= self._min_mirror_pe
        shower = self._project_slices(slices, bright[slices["event"]], core, axis, pointing)
        muon = {key: value[bright[muon["event"]]] for key, value in muon.items()}
        points = {key: np.concatenate([shower[key], muon[key]]) for key in shower}
        true_size, candidate, n_pe, counts, time_sum = self._photoelectrons(points, n, rng)
        charge = digitise(
            n_pe,
            rng,
            self.excess_noise,
            self.nsb_mean_pe,
            self.electronic_noise,
            self.saturation,
        )
        fired = self.trigger(charge, self.trigger_threshold)
        triggered = np.zeros(n, dtype=bool)
        triggered[candidate[fired]] = True
        peak_time = self._peak_time(n_pe[fired], counts[fired], time_sum[fired], rng)

        return ToySimulationResult(
            triggered=triggered,
            impact=np.linalg.norm(np.cross(-core, axis), axis=-1),
            h_first_int=height_from_vertical_depth(comps.x_first * axis[:, 2]),
            x_max=comps.shower_x_max(),
            n_muons=n_muons,
            true_size=true_size,
            image=charge[fired].astype(np.float32),
            peak_time=peak_time.astype(np.float32),
            true_image=n_pe[fired].astype(np.int32),
        )
